// _voxq: the C++ core for Python (pybind11). The Python packages `worker`,
// `tts` and `voxq` wrap it in the guide's classes and coroutines.
//
// Every call into the store drops the GIL while it runs, so other Python
// threads (the event loop's executor threads) keep going. Tasks cross the
// boundary as plain tuples and dicts; the dataclasses live in Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "voxq/config.hpp"
#include "voxq/engines.hpp"
#include "voxq/errors.hpp"
#include "voxq/queue.hpp"
#include "voxq/tts.hpp"
#include "voxq/webhook.hpp"
#include "voxq/worker.hpp"

namespace py = pybind11;
using voxq::Task;
using voxq::TaskItem;
using voxq::TaskState;
using voxq::TextToSpeechRequest;

namespace {

// (text, voice_id, speed, format, response_url) per item.
using ItemTuple = std::tuple<std::string, std::string, double, std::string, std::string>;
// The fields a caller sets on a new task.
using NewTask = std::tuple<std::string /*id*/, std::string /*state*/, double /*schedule_at*/,
                           std::vector<ItemTuple>, double /*created_at*/, double /*updated_at*/,
                           std::string /*queue*/, std::int64_t /*priority*/,
                           std::int64_t /*max_attempts*/, std::string /*dedup_key*/>;

TaskState state_from(const std::string& name) {
    for (TaskState s : voxq::kAllTaskStates) {
        if (voxq::to_string(s) == name) return s;
    }
    throw voxq::ValidationError("state: '" + name + "' is not a TaskState");
}

py::dict task_dict(const Task& t) {
    py::list items;
    for (const TaskItem& i : t.items)
        items.append(py::make_tuple(i.request.text, i.request.voice_id, i.request.speed,
                                    i.request.format, i.response_url));
    py::list history;
    for (const voxq::TaskError& e : t.error_history)
        history.append(py::make_tuple(e.attempt, e.at, e.message));
    py::dict d;
    d["id"] = t.id;
    d["state"] = std::string(voxq::to_string(t.state));
    d["schedule_at"] = t.schedule_at;
    d["items"] = items;
    d["created_at"] = t.created_at;
    d["updated_at"] = t.updated_at;
    d["attempt_count"] = t.attempt_count;
    d["last_error"] = t.last_error;
    d["queue"] = t.queue;
    d["priority"] = t.priority;
    d["max_attempts"] = t.max_attempts;
    d["dedup_key"] = t.dedup_key.empty() ? py::object(py::none()) : py::str(t.dedup_key);
    d["heartbeat_at"] = t.heartbeat_at;
    d["items_delivered"] = t.items_delivered;
    d["error_history"] = history;
    return d;
}

py::list task_dicts(const std::vector<Task>& tasks) {
    py::list out;
    for (const Task& t : tasks) out.append(task_dict(t));
    return out;
}

Task task_from(const NewTask& n) {
    Task t;
    t.id = std::get<0>(n);
    t.state = state_from(std::get<1>(n));
    t.schedule_at = std::get<2>(n);
    for (const auto& [text, voice, speed, format, url] : std::get<3>(n))
        t.items.push_back(TaskItem{TextToSpeechRequest{text, voice, speed, format}, url});
    t.created_at = std::get<4>(n);
    t.updated_at = std::get<5>(n);
    t.queue = std::get<6>(n);
    t.priority = std::get<7>(n);
    t.max_attempts = std::get<8>(n);
    t.dedup_key = std::get<9>(n);
    return t;
}

voxq::QueueConfig config_from(const py::dict& fields) {
    voxq::QueueConfig c;
    for (const auto& [key, value] : fields) {
        const auto name = key.cast<std::string>();
        if (value.is_none()) continue;
        if (name == "database_url")
            c.database_url = value.cast<std::string>();
        else if (name == "default_max_attempts")
            c.default_max_attempts = value.cast<std::int64_t>();
        else if (name == "default_visibility_timeout")
            c.default_visibility_timeout = value.cast<double>();
        else if (name == "retry_backoff_multiplier")
            c.retry_backoff_multiplier = value.cast<double>();
        else if (name == "retry_base_delay")
            c.retry_base_delay = value.cast<double>();
        else if (name == "max_retry_delay")
            c.max_retry_delay = value.cast<double>();
        else if (name == "batch_size")
            c.batch_size = value.cast<std::int64_t>();
        else if (name == "max_text_length")
            c.max_text_length = value.cast<std::int64_t>();
        else if (name == "sqlite_synchronous") {
            const auto v = value.cast<std::string>();
            if (v != "FULL" && v != "NORMAL")
                throw voxq::ConfigError("sqlite_synchronous: '" + v + "' is not FULL or NORMAL");
            c.sqlite_synchronous =
                v == "FULL" ? voxq::SqliteSynchronous::Full : voxq::SqliteSynchronous::Normal;
        } else if (name == "sqlite_busy_timeout_ms")
            c.sqlite_busy_timeout_ms = value.cast<std::int64_t>();
        else if (name == "error_history_limit")
            c.error_history_limit = value.cast<std::int64_t>();
        else if (name == "postgres_schema")
            c.postgres_schema = value.cast<std::string>();
        else if (name == "postgres_pool_size")
            c.postgres_pool_size = value.cast<std::int64_t>();
        else
            throw voxq::ConfigError(name + ": not a QueueConfig field");
    }
    c.validate();
    return c;
}

py::dict config_dict(const voxq::QueueConfig& c) {
    py::dict d;
    d["database_url"] = c.database_url;
    d["default_max_attempts"] = c.default_max_attempts;
    d["default_visibility_timeout"] = c.default_visibility_timeout;
    d["retry_backoff_multiplier"] = c.retry_backoff_multiplier;
    d["retry_base_delay"] = c.retry_base_delay;
    d["max_retry_delay"] = c.max_retry_delay;
    d["batch_size"] = c.batch_size;
    d["max_text_length"] = c.max_text_length;
    d["sqlite_synchronous"] =
        c.sqlite_synchronous == voxq::SqliteSynchronous::Full ? "FULL" : "NORMAL";
    d["sqlite_busy_timeout_ms"] = c.sqlite_busy_timeout_ms;
    d["error_history_limit"] = c.error_history_limit;
    d["postgres_schema"] = c.postgres_schema;
    d["postgres_pool_size"] = c.postgres_pool_size;
    return d;
}

// One WorkerQueue, and the built-in worker pieces that work on it.
class Queue {
  public:
    explicit Queue(const py::dict& config) : queue_(config_from(config)) {}

    void initialize() {
        py::gil_scoped_release release;
        queue_.initialize();
    }
    // Stores the tasks; returns (count, [(id, schedule_at, created_at, updated_at)]).
    py::tuple enqueue(const std::vector<NewTask>& new_tasks) {
        std::vector<Task> tasks;
        tasks.reserve(new_tasks.size());
        for (const NewTask& n : new_tasks) tasks.push_back(task_from(n));
        std::size_t count = 0;
        {
            py::gil_scoped_release release;
            count = queue_.enqueue(tasks);
        }
        py::list filled;
        for (const Task& t : tasks)
            filled.append(py::make_tuple(t.id, t.schedule_at, t.created_at, t.updated_at));
        return py::make_tuple(count, filled);
    }
    py::list dequeue(std::optional<std::int64_t> size, const std::string& queue) {
        std::vector<Task> tasks;
        {
            py::gil_scoped_release release;
            tasks = queue_.dequeue(size, queue);
        }
        return task_dicts(tasks);
    }
    py::list retry(std::optional<std::int64_t> size, std::optional<double> visibility_timeout,
                   std::optional<std::int64_t> max_attempts) {
        std::vector<Task> tasks;
        {
            py::gil_scoped_release release;
            tasks = queue_.retry(size, visibility_timeout, max_attempts);
        }
        return task_dicts(tasks);
    }
    py::dict get_task(const std::string& id) {
        Task t;
        {
            py::gil_scoped_release release;
            t = queue_.get_task(id);
        }
        return task_dict(t);
    }
    py::tuple list_tasks(const std::string& state, const std::string& queue, std::int64_t limit,
                         const std::string& cursor) {
        voxq::TaskFilter filter;
        if (!state.empty()) filter.state = state_from(state);
        filter.queue = queue;
        voxq::TaskPage page;
        {
            py::gil_scoped_release release;
            page = queue_.list_tasks(filter, limit, cursor);
        }
        return py::make_tuple(task_dicts(page.tasks), page.next_cursor);
    }
    std::map<std::string, std::int64_t> stats(const std::string& queue) {
        py::gil_scoped_release release;
        return queue_.get_queue_stats(queue);
    }
    std::int64_t purge(const std::vector<std::string>& states, double older_than) {
        std::vector<TaskState> parsed;
        parsed.reserve(states.size());
        for (const std::string& s : states) parsed.push_back(state_from(s));
        py::gil_scoped_release release;
        return queue_.purge(parsed, older_than);
    }
    void close() {
        py::gil_scoped_release release;
        queue_.close();
    }
    voxq::WorkerQueue& queue() { return queue_; }

  private:
    voxq::WorkerQueue queue_;
};

// The built-in worker (engines from VOXQ_ENGINE_*, webhooks from VOXQ_WEBHOOK_*)
// on a Queue: run in the background, or process one claimed task.
class BuiltinWorker {
  public:
    BuiltinWorker(Queue& queue, int concurrency, const std::string& queue_name)
        : engines_(voxq::SpeechEngines::from_env()),
          sender_(std::make_shared<voxq::WebhookSender>(voxq::WebhookConfig::from_env())),
          worker_(queue.queue(), options(concurrency, queue_name), engines_, sender_) {}
    void start() { worker_.start(); }
    void stop() {
        py::gil_scoped_release release;
        worker_.stop();
    }
    void process(const py::dict& task) {
        Task t;
        t.id = task["id"].cast<std::string>();
        t.state = state_from(task["state"].cast<std::string>());
        t.attempt_count = task["attempt_count"].cast<std::int64_t>();
        t.items_delivered = task["items_delivered"].cast<std::int64_t>();
        for (const auto& item : task["items"].cast<std::vector<ItemTuple>>()) {
            const auto& [text, voice, speed, format, url] = item;
            t.items.push_back(TaskItem{TextToSpeechRequest{text, voice, speed, format}, url});
        }
        py::gil_scoped_release release;
        worker_.process(t);
    }
    std::map<std::string, std::int64_t> counters() const {
        const voxq::WorkerCounters& c = worker_.counters();
        return {{"completed", c.completed.load()},
                {"retried", c.retried.load()},
                {"discarded", c.discarded.load()},
                {"released", c.released.load()},
                {"items_delivered", c.items_delivered.load()},
                {"audio_ms", c.audio_ms.load()}};
    }

  private:
    static voxq::WorkerOptions options(int concurrency, const std::string& queue_name) {
        voxq::WorkerOptions o;
        o.concurrency = concurrency;
        o.queue = queue_name;
        return o;
    }
    std::shared_ptr<voxq::SpeechEngines> engines_;
    std::shared_ptr<voxq::WebhookSender> sender_;
    voxq::Worker worker_;
};

// Synthesizes and encodes one request: (audio bytes, content type, seconds).
py::tuple synthesize(const std::string& text, const std::string& voice_id, double speed,
                     const std::string& format) {
    static const std::shared_ptr<voxq::SpeechEngines> engines = voxq::SpeechEngines::from_env();
    voxq::EncodedAudio encoded;
    double seconds = 0;
    {
        py::gil_scoped_release release;
        const voxq::Audio audio =
            engines->synthesize(TextToSpeechRequest{text, voice_id, speed, format});
        seconds = audio.seconds();
        encoded = voxq::encode_audio(audio, format);
    }
    return py::make_tuple(py::bytes(encoded.bytes), encoded.content_type, seconds);
}

}  // namespace

PYBIND11_MODULE(_voxq, m) {
    m.doc() = "voxq's C++ core (use the worker, tts and voxq packages)";

    // The error classes, QueueError the base of every other one.
    static py::exception<voxq::QueueError> queue_error(m, "QueueError");
    static py::exception<voxq::TaskNotFoundError> not_found(m, "TaskNotFoundError",
                                                            queue_error.ptr());
    static py::exception<voxq::InvalidStateTransitionError> transition(
        m, "InvalidStateTransitionError", queue_error.ptr());
    static py::exception<voxq::DuplicateTaskError> duplicate(m, "DuplicateTaskError",
                                                             queue_error.ptr());
    static py::exception<voxq::ValidationError> validation(m, "ValidationError", queue_error.ptr());
    static py::exception<voxq::ConfigError> config(m, "ConfigError", queue_error.ptr());
    static py::exception<voxq::StoreError> store(m, "StoreError", queue_error.ptr());
    static py::exception<voxq::SpeechError> speech(m, "SpeechError", queue_error.ptr());
    // Most derived first: the first matching catch wins.
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const voxq::TaskNotFoundError& e) {
            not_found(e.what());
        } catch (const voxq::InvalidStateTransitionError& e) {
            transition(e.what());
        } catch (const voxq::DuplicateTaskError& e) {
            duplicate(e.what());
        } catch (const voxq::ValidationError& e) {
            validation(e.what());
        } catch (const voxq::ConfigError& e) {
            config(e.what());
        } catch (const voxq::StoreError& e) {
            store(e.what());
        } catch (const voxq::SpeechError& e) {
            speech(e.what());
        } catch (const voxq::QueueError& e) {
            queue_error(e.what());
        }
    });

    m.def("config_from_env", [] { return config_dict(voxq::QueueConfig::from_env()); });
    m.def("config_check", [](const py::dict& fields) { return config_dict(config_from(fields)); });
    m.def("synthesize", &synthesize, py::arg("text"), py::arg("voice_id"), py::arg("speed") = 1.0,
          py::arg("format") = "wav");
    m.def("audio_formats", &voxq::audio_formats);

    py::class_<Queue>(m, "Queue")
        .def(py::init<const py::dict&>())
        .def("initialize", &Queue::initialize)
        .def("enqueue", &Queue::enqueue)
        .def("dequeue", &Queue::dequeue)
        .def("retry", &Queue::retry)
        .def("get_task", &Queue::get_task)
        .def("list_tasks", &Queue::list_tasks)
        .def("stats", &Queue::stats)
        .def("purge", &Queue::purge)
        .def("close", &Queue::close)
        .def("complete",
             [](Queue& q, const std::string& id, std::optional<std::int64_t> attempt) {
                 py::gil_scoped_release release;
                 q.queue().mark_as_complete(id, attempt);
             })
        .def("retry_later",
             [](Queue& q, const std::string& id, const std::string& error,
                std::optional<std::int64_t> attempt, std::optional<double> not_before) {
                 py::gil_scoped_release release;
                 q.queue().mark_as_retry(id, error, attempt, not_before);
             })
        .def("cancel",
             [](Queue& q, const std::string& id, std::optional<std::int64_t> attempt) {
                 py::gil_scoped_release release;
                 q.queue().mark_as_cancelled(id, attempt);
             })
        .def("discard",
             [](Queue& q, const std::string& id, std::optional<std::int64_t> attempt,
                const std::optional<std::string>& error) {
                 py::gil_scoped_release release;
                 q.queue().mark_as_discarded(id, attempt, error);
             })
        .def("resume",
             [](Queue& q, const std::string& id, std::optional<std::int64_t> attempt) {
                 py::gil_scoped_release release;
                 q.queue().mark_as_resume(id, attempt);
             })
        .def("heartbeat",
             [](Queue& q, const std::string& id, std::optional<std::int64_t> attempt) {
                 py::gil_scoped_release release;
                 q.queue().heartbeat(id, attempt);
             })
        .def("release",
             [](Queue& q, const std::string& id, std::optional<std::int64_t> attempt) {
                 py::gil_scoped_release release;
                 q.queue().release(id, attempt);
             })
        .def("mark_item_delivered", [](Queue& q, const std::string& id, std::int64_t index,
                                       std::optional<std::int64_t> attempt) {
            py::gil_scoped_release release;
            q.queue().mark_item_delivered(id, index, attempt);
        });

    py::class_<BuiltinWorker>(m, "BuiltinWorker")
        .def(py::init<Queue&, int, const std::string&>(), py::keep_alive<1, 2>())
        .def("start", &BuiltinWorker::start)
        .def("stop", &BuiltinWorker::stop)
        .def("process", &BuiltinWorker::process)
        .def("counters", &BuiltinWorker::counters);
}
