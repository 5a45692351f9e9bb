// The `voxq` command line (SPEC §10). Exit status: 0 success; 1 failure, with one
// line on stderr naming the cause; 2 bad usage.
#pragma once

namespace voxq::cli {

int run(int argc, char** argv);

}  // namespace voxq::cli
