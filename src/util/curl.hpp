// RAII for libcurl handles, shared by the webhook sender, object storage and the
// HTTP speech engines; and the options voxq's outbound transfers share.
#pragma once

#include <curl/curl.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace voxq {

struct CurlDeleter {
    void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using CurlHeaders = std::unique_ptr<curl_slist, SlistDeleter>;

// curl_global_init is not thread-safe: run it once, before any handle.
inline void curl_init_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Easy handles kept for the next transfer. A handle keeps its open connections
// (and its DNS cache) across curl_easy_reset, so transfers to one receiver,
// store or speech server go over a kept-alive connection instead of a TCP
// handshake, a socketpair and a teardown each. curl reuses a connection only
// for the same scheme, host and port, and checks that it is still alive; a new
// connection still goes through CURLOPT_OPENSOCKETFUNCTION (the address policy).
class CurlPool {
  public:
    // A handle on loan, reset to curl's defaults; given back when destroyed.
    class Lease {
      public:
        Lease(CurlPool& pool, CurlHandle handle) : pool_(&pool), handle_(std::move(handle)) {}
        ~Lease() {
            if (handle_) pool_->give_back(std::move(handle_));
        }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Lease(Lease&& other) noexcept = default;
        Lease& operator=(Lease&&) = delete;
        // nullptr when curl_easy_init failed.
        [[nodiscard]] CURL* get() const { return handle_.get(); }

      private:
        CurlPool* pool_;
        CurlHandle handle_;
    };

    explicit CurlPool(std::size_t max_idle = 16) : max_idle_(max_idle) { curl_init_once(); }

    [[nodiscard]] Lease take() {
        CurlHandle handle;
        {
            std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                handle = std::move(idle_.back());
                idle_.pop_back();
            }
        }
        if (!handle) return {*this, CurlHandle(curl_easy_init())};
        curl_easy_reset(handle.get());
        return {*this, std::move(handle)};
    }

  private:
    void give_back(CurlHandle handle) {
        std::lock_guard lock(mutex_);
        if (idle_.size() < max_idle_) idle_.push_back(std::move(handle));
    }

    std::size_t max_idle_;
    std::mutex mutex_;
    std::vector<CurlHandle> idle_;  // guarded by mutex_
};

// What every delivery transfer (webhook POST, storage PUT) sets: `url`, http(s)
// only, no redirects, no proxy from the environment, no signals, the timeouts in
// seconds, `body` as the request body, and `error` (CURL_ERROR_SIZE bytes) for
// curl's message.
inline void set_delivery_transfer(CURL* c, const std::string& url, const std::string& body,
                                  double connect_timeout, double total_timeout, char* error) {
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::lround(connect_timeout * 1000)));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::lround(total_timeout * 1000)));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
}

}  // namespace voxq
