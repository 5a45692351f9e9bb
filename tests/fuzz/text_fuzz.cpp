// The text helpers every outside string passes through: their outputs are always
// valid UTF-8, within bounds, and without control characters for terminals.
#include <cstdint>
#include <string_view>

#include "util/text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (!voxq::is_valid_utf8(voxq::to_valid_utf8(input))) __builtin_trap();
    const std::string cut = voxq::truncate_utf8(input, size / 2);
    if (!voxq::is_valid_utf8(cut) || cut.size() > size / 2 + 3) __builtin_trap();
    for (char c : voxq::escape_for_terminal(input)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) __builtin_trap();
    }
    (void)voxq::redact_credentials(input);
    return 0;
}
