// _voxq: the C++ core for Python (pybind11). The Python packages `worker`,
// `tts` and `voxq` wrap it in the guide's classes and coroutines.
//
// Every call into the store drops the GIL while it runs, so other Python
// threads (the event loop's executor threads) keep going. Tasks cross the
// boundary as plain tuples and dicts; the dataclasses live in Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>
#include <variant>

#include "voxq/config.hpp"
#include "voxq/errors.hpp"
#include "voxq/queue.hpp"
#include "voxq/speech.hpp"
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
    return voxq::task_state_from(name, "state");
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

std::vector<TaskItem> items_from(const std::vector<ItemTuple>& tuples) {
    std::vector<TaskItem> items;
    items.reserve(tuples.size());
    for (const auto& [text, voice, speed, format, url] : tuples)
        items.push_back(TaskItem{TextToSpeechRequest{text, voice, speed, format}, url});
    return items;
}

Task task_from(const NewTask& n) {
    Task t;
    t.id = std::get<0>(n);
    t.state = state_from(std::get<1>(n));
    t.schedule_at = std::get<2>(n);
    t.items = items_from(std::get<3>(n));
    t.created_at = std::get<4>(n);
    t.updated_at = std::get<5>(n);
    t.queue = std::get<6>(n);
    t.priority = std::get<7>(n);
    t.max_attempts = std::get<8>(n);
    t.dedup_key = std::get<9>(n);
    return t;
}

// QueueConfig crosses as a dict, field by field through voxq::config_fields():
// no field list is written here (or in Python, which builds its dataclass from
// config_fields()). A value of the wrong type is a TypeError naming the field.
voxq::QueueConfig config_from(const py::dict& fields) {
    voxq::QueueConfig c;
    for (const auto& [key, value] : fields) {
        const auto name = key.cast<std::string>();
        if (value.is_none()) continue;
        const auto& all = voxq::config_fields();
        const auto field = std::find_if(all.begin(), all.end(),
                                        [&](const voxq::ConfigField& f) { return f.name == name; });
        if (field == all.end()) throw voxq::ConfigError(name + ": not a QueueConfig field");
        try {
            std::visit(
                [&](auto member) {
                    using T = std::remove_cvref_t<decltype(c.*member)>;
                    if constexpr (std::is_same_v<T, voxq::SqliteSynchronous>) {
                        const auto text = value.cast<std::string>();
                        const auto mode = voxq::parse_sqlite_synchronous(text);
                        if (!mode) {
                            throw voxq::ConfigError(name + ": '" + text +
                                                    "' is not FULL or NORMAL");
                        }
                        c.*member = *mode;
                    } else {
                        c.*member = value.cast<T>();
                    }
                },
                field->member);
        } catch (const py::cast_error&) {
            throw py::type_error(name + ": wrong type (" +
                                 std::string(py::str(py::type::of(value).attr("__name__"))) + ")");
        }
    }
    c.validate();
    return c;
}

py::dict config_dict(const voxq::QueueConfig& c) {
    py::dict d;
    for (const voxq::ConfigField& f : voxq::config_fields()) {
        std::visit(
            [&](auto member) {
                using T = std::remove_cvref_t<decltype(c.*member)>;
                if constexpr (std::is_same_v<T, voxq::SqliteSynchronous>) {
                    d[py::str(std::string(f.name))] = std::string(voxq::to_string(c.*member));
                } else {
                    d[py::str(std::string(f.name))] = c.*member;
                }
            },
            f.member);
    }
    return d;
}

// What one store call gave back, until the event loop turns it into Python.
struct EnqueueResult {
    std::size_t count = 0;
    std::vector<Task> tasks;  // with ids and times filled in
};
using Result = std::variant<std::monostate, std::int64_t, std::vector<Task>, Task,
                            std::map<std::string, std::int64_t>, voxq::TaskPage, EnqueueResult>;

struct Completion {
    std::uint64_t token = 0;
    Result result;
    std::string error_class;  // empty: success
    std::string message;
};

// The Python class (in this module) and message for a C++ error, most derived
// class first; no class for an exception that is not voxq's.
std::pair<const char*, std::string> python_error(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const voxq::TaskNotFoundError& x) {
        return {"TaskNotFoundError", x.what()};
    } catch (const voxq::InvalidStateTransitionError& x) {
        return {"InvalidStateTransitionError", x.what()};
    } catch (const voxq::DuplicateTaskError& x) {
        return {"DuplicateTaskError", x.what()};
    } catch (const voxq::ValidationError& x) {
        return {"ValidationError", x.what()};
    } catch (const voxq::ConfigError& x) {
        return {"ConfigError", x.what()};
    } catch (const voxq::StoreError& x) {
        return {"StoreError", x.what()};
    } catch (const voxq::SpeechError& x) {
        return {"SpeechError", x.what()};
    } catch (const voxq::QueueError& x) {
        return {"QueueError", x.what()};
    } catch (const std::exception& x) {
        return {nullptr, x.what()};
    }
}

// One WorkerQueue whose calls run on C++ threads of its own, never holding the
// GIL: submit() hands a call over and returns at once; each finished call is
// queued and signalled on an eventfd that the asyncio loop watches
// (loop.add_reader), and completions() hands them to the loop in one batch.
// An await then costs a queue push and, shared by every call finished
// meanwhile, one wake-up of the loop, instead of a Python thread hand-off and a
// GIL round trip each.
class Queue {
  public:
    Queue(const py::dict& config, int threads)
        : queue_(config_from(config)), wake_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
        if (wake_ < 0) throw voxq::QueueError("eventfd failed");
        for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { serve(); });
    }
    ~Queue() {
        shutdown();
        ::close(wake_);
    }
    Queue(const Queue&) = delete;
    Queue& operator=(const Queue&) = delete;

    [[nodiscard]] int fileno() const { return wake_; }

    // Queues `call` (its arguments already C++ values, converted under the GIL by
    // the typed operations in PYBIND11_MODULE); a thread of the queue runs it
    // without the GIL and reports under `token`.
    void submit(std::uint64_t token, std::function<Result()> call) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) throw voxq::QueueError("the queue is closed");
            calls_.emplace_back(token, std::move(call));
        }
        work_.notify_one();
    }

    // Finished calls: [(token, True, value) | (token, False, (error class, message))].
    py::list completions() {
        std::uint64_t n = 0;
        (void)::read(wake_, &n, sizeof n);  // reset the eventfd; EAGAIN when already read
        std::vector<Completion> done;
        {
            std::lock_guard lock(mutex_);
            done.swap(done_);
        }
        py::list out;
        for (Completion& c : done) {
            if (c.error_class.empty())
                out.append(py::make_tuple(c.token, true, to_python(c.result)));
            else
                out.append(
                    py::make_tuple(c.token, false, py::make_tuple(c.error_class, c.message)));
        }
        return out;
    }

    // Stops the threads once the calls already submitted have run.
    void shutdown() {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            stopping_ = true;
        }
        work_.notify_all();
        py::gil_scoped_release release;
        for (auto& t : threads_) t.join();
    }

    voxq::WorkerQueue& queue() { return queue_; }

  private:
    static py::object to_python(const Result& r) {
        return std::visit(
            [](const auto& v) -> py::object {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, std::monostate>)
                    return py::none();
                else if constexpr (std::is_same_v<T, std::int64_t>)
                    return py::int_(v);
                else if constexpr (std::is_same_v<T, std::vector<Task>>)
                    return task_dicts(v);
                else if constexpr (std::is_same_v<T, Task>)
                    return task_dict(v);
                else if constexpr (std::is_same_v<T, voxq::TaskPage>)
                    return py::make_tuple(task_dicts(v.tasks), v.next_cursor);
                else if constexpr (std::is_same_v<T, EnqueueResult>) {
                    py::list filled;
                    for (const Task& t : v.tasks)
                        filled.append(
                            py::make_tuple(t.id, t.schedule_at, t.created_at, t.updated_at));
                    return py::make_tuple(v.count, filled);
                } else {
                    return py::cast(v);  // the stats map
                }
            },
            r);
    }

    void serve() {
        for (;;) {
            std::pair<std::uint64_t, std::function<Result()>> call;
            {
                std::unique_lock lock(mutex_);
                work_.wait(lock, [&] { return stopping_ || !calls_.empty(); });
                if (calls_.empty()) return;  // stopping, and nothing left to run
                call = std::move(calls_.front());
                calls_.pop_front();
            }
            Completion c;
            c.token = call.first;
            try {
                c.result = call.second();
            } catch (const std::exception&) {
                const auto [name, message] = python_error(std::current_exception());
                c.error_class = name != nullptr ? name : "QueueError";
                c.message = message;
            }
            bool first = false;
            {
                std::lock_guard lock(mutex_);
                first = done_.empty();
                done_.push_back(std::move(c));
            }
            if (first) {  // later completions ride on the same wake-up
                const std::uint64_t one = 1;
                (void)::write(wake_, &one, sizeof one);
            }
        }
    }

    voxq::WorkerQueue queue_;
    int wake_;
    std::mutex mutex_;
    std::condition_variable work_;
    std::deque<std::pair<std::uint64_t, std::function<Result()>>> calls_;  // guarded by mutex_
    std::vector<Completion> done_;                                         // guarded by mutex_
    bool stopping_ = false;                                                // guarded by mutex_
    std::vector<std::thread> threads_;
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
        t.items = items_from(task["items"].cast<std::vector<ItemTuple>>());
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

using Attempt = std::optional<std::int64_t>;

// An operation on one task by id and attempt (complete, cancel, ...).
auto by_id(void (voxq::WorkerQueue::*apply)(const std::string&, Attempt)) {
    return [apply](Queue& s, std::uint64_t t, const std::string& id, Attempt at) {
        s.submit(t, [&q = s.queue(), apply, id, at]() -> Result {
            (q.*apply)(id, at);
            return {};
        });
    };
}

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
    // pybind11 fixes the signature: the exception_ptr comes by value.
    // NOLINTNEXTLINE(performance-unnecessary-value-param)
    py::register_exception_translator([](std::exception_ptr p) {
        if (!p) return;
        try {
            std::rethrow_exception(p);
        } catch (const py::cast_error& e) {
            // An argument of the wrong type: Python's TypeError, not RuntimeError.
            PyErr_SetString(PyExc_TypeError,
                            (std::string("wrong argument type: ") + e.what()).c_str());
            return;
        } catch (...) {
        }
        const auto [name, message] = python_error(p);
        if (name == nullptr) std::rethrow_exception(p);  // not voxq's: pybind11's own mapping
        const py::object cls = py::module_::import("_voxq").attr(name);
        PyErr_SetString(cls.ptr(), message.c_str());
    });

    m.def("config_from_env", [] { return config_dict(voxq::QueueConfig::from_env()); });
    // The fields in order, with their defaults: Python's QueueConfig is built from it.
    m.def("config_defaults", [] { return config_dict(voxq::QueueConfig{}); });
    m.def("config_check", [](const py::dict& fields) { return config_dict(config_from(fields)); });
    m.def("synthesize", &synthesize, py::arg("text"), py::arg("voice_id"), py::arg("speed") = 1.0,
          py::arg("format") = "wav");
    m.def("audio_formats", &voxq::audio_formats);

    py::class_<Queue>(m, "Queue")
        .def(py::init<const py::dict&, int>())
        .def("fileno", &Queue::fileno)
        // One method per operation, with typed arguments (a call token first).
        .def("initialize",
             [](Queue& s, std::uint64_t t) {
                 s.submit(t, [&q = s.queue()]() -> Result {
                     q.initialize();
                     return {};
                 });
             })
        .def("enqueue",
             [](Queue& s, std::uint64_t t, const std::vector<NewTask>& fresh) {
                 std::vector<Task> tasks;
                 tasks.reserve(fresh.size());
                 for (const NewTask& n : fresh) tasks.push_back(task_from(n));
                 s.submit(t, [&q = s.queue(), tasks = std::move(tasks)]() mutable -> Result {
                     const std::size_t count = q.enqueue(tasks);
                     return EnqueueResult{count, std::move(tasks)};
                 });
             })
        .def("dequeue",
             [](Queue& s, std::uint64_t t, Attempt size, const std::string& queue) {
                 s.submit(t, [&q = s.queue(), size, queue]() -> Result {
                     return q.dequeue(size, queue);
                 });
             })
        .def("retry",
             [](Queue& s, std::uint64_t t, Attempt size, std::optional<double> visibility_timeout,
                Attempt max_attempts) {
                 s.submit(t, [&q = s.queue(), size, visibility_timeout, max_attempts]() -> Result {
                     return q.retry(size, visibility_timeout, max_attempts);
                 });
             })
        .def("complete", by_id(&voxq::WorkerQueue::mark_as_complete))
        .def("cancel", by_id(&voxq::WorkerQueue::mark_as_cancelled))
        .def("resume", by_id(&voxq::WorkerQueue::mark_as_resume))
        .def("heartbeat", by_id(&voxq::WorkerQueue::heartbeat))
        .def("release", by_id(&voxq::WorkerQueue::release))
        .def("retry_later",
             [](Queue& s, std::uint64_t t, const std::string& id, const std::string& error,
                Attempt at, std::optional<double> not_before) {
                 s.submit(t, [&q = s.queue(), id, error, at, not_before]() -> Result {
                     q.mark_as_retry(id, error, at, not_before);
                     return {};
                 });
             })
        .def("discard",
             [](Queue& s, std::uint64_t t, const std::string& id, Attempt at,
                std::optional<std::string> error) {
                 s.submit(t, [&q = s.queue(), id, at, error]() -> Result {
                     q.mark_as_discarded(id, at, error);
                     return {};
                 });
             })
        .def("mark_item_delivered",
             [](Queue& s, std::uint64_t t, const std::string& id, std::int64_t index, Attempt at) {
                 s.submit(t, [&q = s.queue(), id, index, at]() -> Result {
                     q.mark_item_delivered(id, index, at);
                     return {};
                 });
             })
        .def("get_task",
             [](Queue& s, std::uint64_t t, const std::string& id) {
                 s.submit(t, [&q = s.queue(), id]() -> Result { return q.get_task(id); });
             })
        .def("stats",
             [](Queue& s, std::uint64_t t, const std::string& queue) {
                 s.submit(t,
                          [&q = s.queue(), queue]() -> Result { return q.get_queue_stats(queue); });
             })
        .def("list_tasks",
             [](Queue& s, std::uint64_t t, const std::string& state, const std::string& queue,
                std::int64_t limit, const std::string& cursor) {
                 voxq::TaskFilter filter;
                 if (!state.empty()) filter.state = state_from(state);
                 filter.queue = queue;
                 s.submit(t, [&q = s.queue(), filter, limit, cursor]() -> Result {
                     return q.list_tasks(filter, limit, cursor);
                 });
             })
        .def("purge",
             [](Queue& s, std::uint64_t t, const std::vector<std::string>& names,
                double older_than) {
                 std::vector<TaskState> states;
                 for (const std::string& name : names) states.push_back(state_from(name));
                 s.submit(t, [&q = s.queue(), states, older_than]() -> Result {
                     return q.purge(states, older_than);
                 });
             })
        .def("close",
             [](Queue& s, std::uint64_t t) {
                 s.submit(t, [&q = s.queue()]() -> Result {
                     q.close();
                     return {};
                 });
             })
        .def("completions", &Queue::completions)
        .def("shutdown", &Queue::shutdown);

    py::class_<BuiltinWorker>(m, "BuiltinWorker")
        .def(py::init<Queue&, int, const std::string&>(), py::keep_alive<1, 2>())
        .def("start", &BuiltinWorker::start)
        .def("stop", &BuiltinWorker::stop)
        .def("process", &BuiltinWorker::process)
        .def("counters", &BuiltinWorker::counters);
}
