// RAII for libcurl handles, shared by the webhook sender, object storage and the
// HTTP speech engines; and the options voxq's outbound transfers share.
#pragma once

#include <curl/curl.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <string>

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
