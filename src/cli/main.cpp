// The voxq command: a thin entry point over cli/app (one file per command in cli/commands/).
#include <malloc.h>

#include "cli/app.hpp"

int main(int argc, char** argv) {
    // Each speech item passes through buffers of hundreds of KB (PCM, the encoded
    // file, the HTTP body). Above glibc's mmap threshold every one of them is a
    // fresh mmap, page-faulted in and unmapped again: keep them in the heap.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    return voxq::cli::run(argc, argv);
}
