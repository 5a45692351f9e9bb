#include "util/text.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <string>

namespace voxq {
namespace {

// One formatter serves error messages, `voxq config` and the settings tables:
// a number reads back exactly, and never in exponent form.
TEST(FormatNumber, ShowsTheShortestDecimalThatReadsBackWithoutAnExponent) {
    EXPECT_EQ(format_number(30), "30");
    EXPECT_EQ(format_number(0.25), "0.25");
    EXPECT_EQ(format_number(0.1), "0.1");
    EXPECT_EQ(format_number(1'000'000), "1000000");  // %g said "1e+06"
    EXPECT_EQ(format_number(0.0001234), "0.0001234");
    EXPECT_EQ(format_number(-2.5), "-2.5");
    EXPECT_EQ(format_number(9007199254740993.0), "9007199254740992");
    for (const double v : {1e300, 5e-324, std::numeric_limits<double>::max(), 1.0 / 3.0}) {
        const std::string shown = format_number(v);
        EXPECT_EQ(shown.find('e'), std::string::npos) << shown;
        EXPECT_EQ(std::strtod(shown.c_str(), nullptr), v) << shown;  // stod refuses denormals
    }
}

}  // namespace
}  // namespace voxq
