// Child processes for multi-process tests: fork, run a function, _exit.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <vector>

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

// Starts `argv` with `env` added to this environment and stdout+stderr to
// `log`. Returns the pid. Everything is prepared before fork: the child of a
// threaded process may only make async-signal-safe calls.
inline pid_t start_program(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env, const std::string& log) {
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string entry = *e;
        if (env.count(entry.substr(0, entry.find('='))) == 0) environment.push_back(entry);
    }
    for (const auto& [k, v] : env) environment.push_back(k + "=" + v);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        execve(args[0], args.data(), envp.data());
        _exit(127);
    }
    close(fd);
    return pid;
}

}  // namespace voxq::testing
