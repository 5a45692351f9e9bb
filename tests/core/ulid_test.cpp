#include "core/ulid.hpp"

#include <gtest/gtest.h>

#include <set>

namespace voxq::detail {
namespace {

TEST(Ulid, EncodesTheSpecVector) {
    // Time 0x0001_7E_... from the ULID spec's example layout: all-zero and all-one edges.
    EXPECT_EQ(encode_ulid(0, 0, 0), "00000000000000000000000000");
    EXPECT_EQ(encode_ulid(0xFFFFFFFFFFFFULL, 0xFFFF, ~0ULL), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    // 1469918176385 ms is 01ARYZ6S41 in the spec's README.
    EXPECT_EQ(encode_ulid(1469918176385ULL, 0, 0).substr(0, 10), "01ARYZ6S41");
    EXPECT_EQ(encode_ulid(0, 0, 1), "00000000000000000000000001");
    EXPECT_EQ(encode_ulid(0, 1, 0).substr(10), "000G000000000000")
        << "bit 64 tops the 4th random digit";
}

TEST(Ulid, MonotonicWithinAMillisecondAndAcrossThem) {
    UlidGenerator gen;
    std::string last;
    std::set<std::string> seen;
    for (int i = 0; i < 10'000; ++i) {
        const std::string id = gen.next(1'700'000'000'000 + i / 1000);
        ASSERT_EQ(id.size(), 26U);
        ASSERT_LT(last, id);
        last = id;
        seen.insert(id);
    }
    EXPECT_EQ(seen.size(), 10'000U);
    // A clock that steps back does not break the order.
    EXPECT_LT(last, gen.next(1'600'000'000'000));
}

}  // namespace
}  // namespace voxq::detail
