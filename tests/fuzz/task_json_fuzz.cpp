// Task JSON and JSON Lines as voxq reads them (CLI files, HTTP bodies, Python):
// decoding never crashes, and whatever decodes and validates serializes again.
#include <cstdint>
#include <string_view>

#include "core/validation.hpp"
#include "voxq/errors.hpp"
#include "voxq/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    static const voxq::QueueConfig config;
    std::size_t index = 0;
    for (std::size_t start = 0; start <= input.size(); ++index) {
        const std::size_t end = std::min(input.find('\n', start), input.size());
        try {
            voxq::Task task = voxq::task_from_json(input.substr(start, end - start), index);
            voxq::detail::validate_new_task(task, index, config);
            (void)voxq::task_to_json(task, true);
        } catch (const voxq::QueueError&) {
        }
        start = end + 1;
    }
    return 0;
}
