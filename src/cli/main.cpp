// The voxq command: a thin entry point over cli/commands.
#include "cli/commands.hpp"

int main(int argc, char** argv) {
    return voxq::cli::run(argc, argv);
}
