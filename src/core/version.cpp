#include "voxq/version.hpp"

namespace voxq {

const char* version() noexcept {
    return VOXQ_VERSION;  // the project() version in CMakeLists.txt
}

}  // namespace voxq
