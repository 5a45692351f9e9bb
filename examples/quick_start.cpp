// The README's C++ quick start (the guide's first example), built and run by
// `make test` so it cannot rot. Uses QUEUE_DATABASE_URL like any voxq program.
#include <iostream>
#include <voxq/queue.hpp>

namespace {
// Stands in for your TTS logic.
bool process_tts_task(const voxq::Task& task) {
    return !task.items.empty();
}
}  // namespace

int main() {
    voxq::WorkerQueue queue(voxq::QueueConfig::from_env());  // SQLite file in data/
    queue.initialize();

    voxq::Task task;  // id "" => a ULID; state PENDING; due now
    task.items.push_back({{.text = "Hello, world!", .voice_id = "kokoro.af_heart"},
                          "https://your-webhook.com/callback"});
    std::vector<voxq::Task> tasks{task};
    queue.enqueue(tasks);  // atomic; tasks[0].id is now filled in

    for (const voxq::Task& t : queue.dequeue(5)) {
        try {
            bool success = process_tts_task(t);  // your TTS logic
            if (success) {
                queue.mark_as_complete(t.id, t.attempt_count);
            } else {
                queue.mark_as_retry(t.id, "Processing failed", t.attempt_count);
            }
        } catch (const std::exception& e) {
            queue.mark_as_retry(t.id, e.what(), t.attempt_count);
        }
    }

    auto moved = queue.retry(10);  // the retry sweep
    std::cout << "Processed " << moved.size() << " retry tasks\n";
    std::cout << "completed: " << queue.get_queue_stats()["completed"] << "\n";
    queue.close();
}
