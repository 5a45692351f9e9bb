// Child processes for multi-process tests: fork, run a function, _exit.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>

namespace voxq::testing {

// Forks; the child runs `body` and exits 0, or 1 if it threw. Returns the pid.
inline pid_t spawn(const std::function<void()>& body) {
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        int code = 0;
        try {
            body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child %d: %s\n", getpid(), e.what());
            code = 1;
        }
        _exit(code);
    }
    return pid;
}

// Waits for `pid`; returns its exit code, or 128 + signal.
inline int wait_for(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace voxq::testing
