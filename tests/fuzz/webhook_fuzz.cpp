// What receivers and servers send back: Retry-After values, and Standard Webhooks
// headers checked by voxq sink and the inbox; and the deliveries those two unwrap
// (a JSON event, or raw audio with voxq-* headers), which may be anything.
#include <cstdint>
#include <string>
#include <string_view>

#include "voxq/errors.hpp"
#include "voxq/webhook.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (auto seconds = voxq::parse_retry_after(input, 1'700'000'000)) {
        if (!(*seconds >= 0 && *seconds <= 1e9)) __builtin_trap();
    }
    // id | timestamp | signature | body
    std::string parts[4];
    std::size_t k = 0;
    for (char c : input) {
        if (c == '|' && k < 3) {
            ++k;
        } else {
            parts[k] += c;
        }
    }
    static const std::vector<std::string> secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    (void)voxq::webhook_signature_problem(secrets, parts[0], parts[1], parts[3], parts[2],
                                          1'700'000'000);
    // The body as a JSON delivery, then as a raw one with the other parts as its
    // voxq-task-id, voxq-item and voxq-sha256: an answer or a ValidationError.
    for (const char* type : {"application/json", "audio/wav"}) {
        std::string body(input);
        try {
            const auto delivery = voxq::unwrap_delivery(
                [&](const std::string& name) -> std::string {
                    if (name == "content-type") return type;
                    if (name == "voxq-task-id") return parts[0];
                    if (name == "voxq-item") return parts[1];
                    if (name == "voxq-sha256") return parts[2];
                    return {};
                },
                body);
            if (delivery && delivery->item_index < 0) __builtin_trap();
        } catch (const voxq::ValidationError&) {
        }
    }
    // A body ending in "}}" may take the receiver's fast path (the trailing audio
    // cut out before parsing); "} }" is the same JSON parsed whole. Both must
    // unwrap to the same delivery, or be refused alike.
    const auto outcome = [](std::string body) -> std::string {
        try {
            const auto d = voxq::unwrap_delivery(
                [](const std::string& name) -> std::string {
                    return name == "content-type" ? "application/json" : "";
                },
                body);
            if (!d) return "none";
            return d->task_id + '\n' + std::to_string(d->item_index) + '\n' + d->content_type +
                   '\n' + d->audio + '\n' + d->audio_url + '\n' + d->event;
        } catch (const voxq::ValidationError& e) {
            return std::string("refused ") + e.what();
        }
    };
    std::string body(input);
    const std::size_t end = body.find_last_not_of(" \t\n\r");
    if (end != std::string::npos && end >= 1 && body.compare(end - 1, 2, "}}") == 0) {
        std::string whole = body;
        whole.insert(end, " ");
        if (outcome(body) != outcome(whole)) __builtin_trap();
    }
    return 0;
}
