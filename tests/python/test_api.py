"""The Python API's own suite: operations, errors, types and defaults, fencing,
the state table, the event loop staying free, several processes on one file,
and the built-in worker and synthesis from Python."""
import asyncio
import base64
import dataclasses
import http.server
import json
import multiprocessing
import re
import sqlite3
import threading

import pytest

import tts
import voxq
import worker
from tts import TextToSpeechRequest
from worker import (InvalidStateTransitionError, QueueConfig, QueueError, Task, TaskItem,
                    TaskNotFoundError, TaskState, WorkerQueue)


def make_task(text="Hi", url="https://webhook.example.com", voice="espeak.en-us", **kw):
    return Task(items=[TaskItem(TextToSpeechRequest(text=text, voice_id=voice), url)], **kw)


async def opened(url, **config):
    queue = WorkerQueue(QueueConfig(database_url=url, **config))
    await queue.initialize()
    return queue


def test_types_defaults_and_enum_values():
    assert [s.value for s in TaskState] == ["PENDING", "PROCESSING", "COMPLETED", "RETRYABLE",
                                           "CANCELLED", "DISCARDED"]
    assert TaskState("PENDING") is TaskState.PENDING and TaskState.PENDING == "PENDING"
    t = Task()
    assert (t.id, t.state, t.schedule_at, t.items, t.created_at, t.updated_at) == (
        "", TaskState.PENDING, 0, [], 0, 0)
    r = TextToSpeechRequest(text="x", voice_id="espeak.en-us")
    assert (r.speed, r.format) == (1.0, "wav")
    c = QueueConfig()
    assert (c.database_url, c.default_max_attempts, c.default_visibility_timeout,
            c.retry_backoff_multiplier, c.retry_base_delay, c.max_retry_delay, c.batch_size) == (
        "sqlite+aiosqlite:///data/queue.db", 3, 3600, 2.0, 60, 3600, 100)
    for cls in (worker.TaskNotFoundError, worker.InvalidStateTransitionError,
                worker.DuplicateTaskError, worker.ValidationError, worker.ConfigError,
                worker.StoreError):
        assert issubclass(cls, QueueError) and issubclass(QueueError, Exception)


def test_config_from_env_names_a_bad_variable(monkeypatch):
    monkeypatch.setenv("QUEUE_MAX_ATTEMPTS", "abc")
    with pytest.raises(worker.ConfigError, match="QUEUE_MAX_ATTEMPTS: 'abc' is not an integer"):
        QueueConfig.from_env()
    with pytest.raises(worker.ConfigError, match="database_url"):
        QueueConfig(database_url="mysql://nope")


def test_config_has_every_setting_of_the_core_and_types_them(monkeypatch):
    # Built from the core's one table: a setting added there (max_stalls was
    # once missing here) cannot be forgotten in Python.
    names = [f.name for f in dataclasses.fields(QueueConfig)]
    assert names[:7] == ["database_url", "default_max_attempts", "default_visibility_timeout",
                         "retry_backoff_multiplier", "retry_base_delay", "max_retry_delay",
                         "batch_size"]
    assert "max_stalls" in names and "postgres_pool_size" in names
    monkeypatch.setenv("VOXQ_MAX_STALLS", "7")
    assert QueueConfig.from_env().max_stalls == 7
    assert QueueConfig(sqlite_synchronous="normal").sqlite_synchronous == "normal"
    with pytest.raises(TypeError, match="batch_size"):
        QueueConfig(batch_size="many")
    with pytest.raises(TypeError, match="max_stalls"):
        QueueConfig(max_stalls=2.5)
    with pytest.raises(worker.ConfigError, match="sqlite_synchronous: 'OFF' is not FULL or NORMAL"):
        QueueConfig(sqlite_synchronous="OFF")


def test_every_operation_and_the_state_table(db_url, run):
    async def go():
        q = await opened(db_url, retry_base_delay=0)
        tasks = [make_task(str(i)) for i in range(6)]
        assert await q.enqueue(tasks) == 6
        assert all(t.id and t.created_at > 0 and t.schedule_at > 0 for t in tasks)
        a, b, c, d, e, f = [t.id for t in tasks]
        got = await q.dequeue(size=4)
        assert [t.id for t in got] == [a, b, c, d]
        assert all(t.state == TaskState.PROCESSING and t.attempt_count == 1 for t in got)
        await q.mark_as_complete(a)
        await q.mark_as_retry(b, "flaky")
        await q.mark_as_discarded(c)
        await q.release(d)
        await q.mark_as_cancelled(e)
        stats = await q.get_queue_stats()
        assert stats == {"pending": 2, "processing": 0, "completed": 1, "retryable": 1,
                         "cancelled": 1, "discarded": 1, "total": 6}
        assert (await q.get_task(b)).last_error == "flaky"
        assert [t.id for t in await q.retry(size=10)] == [b]
        await q.mark_as_resume(c)
        assert (await q.get_task(c)).attempt_count == 0
        # Refused transitions name the states and change nothing.
        with pytest.raises(InvalidStateTransitionError, match="COMPLETED"):
            await q.mark_as_retry(a, "late")
        with pytest.raises(InvalidStateTransitionError):
            await q.mark_as_cancelled(a)
        with pytest.raises(InvalidStateTransitionError):
            await q.mark_as_resume(f)
        with pytest.raises(TaskNotFoundError):
            await q.mark_as_complete("no-such-task")
        with pytest.raises(TaskNotFoundError):
            await q.get_task("no-such-task")
        assert (await q.get_task(a)).state == TaskState.COMPLETED
        # Listing, paging and purge.
        page, cursor = await q.list_tasks(limit=4)
        rest, end = await q.list_tasks(limit=4, cursor=cursor)
        assert len(page) == 4 and len(rest) == 2 and end == ""
        assert len({t.id for t in page + rest}) == 6
        assert [t.id for t in (await q.list_tasks(state=TaskState.CANCELLED))[0]] == [e]
        assert await q.purge([TaskState.COMPLETED, TaskState.CANCELLED], older_than=0) == 2
        await q.close()
    run(go())


def test_bad_input_names_the_field_and_stores_nothing(db_url, run):
    async def go():
        q = await opened(db_url)
        bad = [make_task("ok"), make_task("", voice="espeak.en-us")]
        with pytest.raises(worker.ValidationError, match=r"task 1: items\[0\].request.text"):
            await q.enqueue(bad)
        with pytest.raises(worker.ValidationError, match="voice_id"):
            await q.enqueue([make_task("x", voice="nodot")])
        with pytest.raises(worker.ValidationError, match="task 0: not a Task"):
            await q.enqueue(["not a task"])
        dup = make_task("x", id="same-id")
        await q.enqueue([dup])
        with pytest.raises(worker.DuplicateTaskError):
            await q.enqueue([make_task("y", id="same-id")])
        assert (await q.get_queue_stats())["total"] == 1
        await q.close()
    run(go())


def test_wrong_types_are_type_errors_and_bad_values_validation_errors(db_url, run):
    async def go():
        q = await opened(db_url)
        for kw, field in [({"priority": "high"}, "priority"), ({"schedule_at": "soon"}, "schedule_at"),
                          ({"queue": 5}, "queue"), ({"id": 7}, "id"), ({"priority": True}, "priority")]:
            with pytest.raises(TypeError, match=f"task 0: {field}: must be"):
                await q.enqueue([make_task("x", **kw)])
        with pytest.raises(TypeError, match=r"items\[0\].request.text: must be str"):
            await q.enqueue([make_task(None)])
        with pytest.raises(TypeError, match=r"items\[0\].response_url: must be str"):
            await q.enqueue([make_task("x", url=b"http://e.com/")])
        with pytest.raises(worker.ValidationError, match="priority: .* out of range"):
            await q.enqueue([make_task("x", priority=2 ** 70)])
        with pytest.raises(worker.ValidationError, match="priority: must fit in 32 bits"):
            await q.enqueue([make_task("x", priority=2 ** 40)])
        with pytest.raises(worker.ValidationError, match="year 9999"):
            await q.enqueue([make_task("x", schedule_at=1e300)])
        with pytest.raises(TypeError):
            await q.dequeue("5")
        with pytest.raises(TypeError):
            await q.get_task(None)
        assert (await q.get_queue_stats())["total"] == 0
        await q.close()
    run(go())


def test_fencing_by_attempt(db_url, run):
    async def go():
        q = await opened(db_url, retry_base_delay=0)
        t = make_task("fenced")
        await q.enqueue([t])
        (first,) = await q.dequeue(size=1)
        await q.mark_as_retry(t.id, "first failure", attempt=first.attempt_count)
        await q.retry()
        (second,) = await q.dequeue(size=1)
        assert second.attempt_count == 2
        with pytest.raises(InvalidStateTransitionError, match="attempt 2"):
            await q.mark_as_complete(t.id, attempt=first.attempt_count)
        await q.heartbeat(t.id, attempt=2)
        await q.mark_as_complete(t.id, attempt=2)
        assert (await q.get_task(t.id)).state == TaskState.COMPLETED
        await q.close()
    run(go())


def test_the_event_loop_runs_while_the_store_waits(db_url, run):
    """A write blocked on another connection's lock does not block the loop."""
    async def go():
        q = await opened(db_url, sqlite_busy_timeout_ms=1500)
        path = db_url[len("sqlite:///"):]
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        ticking = asyncio.create_task(ticker())
        enqueue = asyncio.create_task(q.enqueue([make_task("waits for the lock")]))
        await asyncio.sleep(0.5)
        assert not enqueue.done()
        assert ticks >= 10, f"the loop ran only {ticks} times in 0.5 s"
        other.execute("ROLLBACK")
        other.close()
        assert await enqueue == 1
        ticking.cancel()
        await q.close()
    run(go())


def test_many_coroutines_drain_each_task_once(db_url, run):
    async def go():
        q = await opened(db_url, sqlite_synchronous="NORMAL")
        tasks = [make_task(f"t{i}") for i in range(2000)]
        for i in range(0, len(tasks), 100):
            await q.enqueue(tasks[i:i + 100])
        done = []

        async def loop():
            while True:
                batch = await q.dequeue(size=5)
                if not batch:
                    return
                for t in batch:
                    await q.mark_as_complete(t.id, attempt=t.attempt_count)
                    done.append(t.id)
        await asyncio.gather(*(loop() for _ in range(16)))
        stats = await q.get_queue_stats()
        await q.close()
        return tasks, done, stats
    tasks, done, stats = run(go(), timeout=120)
    assert sorted(done) == sorted(t.id for t in tasks)
    assert stats["completed"] == 2000 and stats["total"] == 2000


def _drain_in_a_process(url, out):
    async def go():
        q = WorkerQueue(QueueConfig(database_url=url))
        await q.initialize()
        mine = []

        async def loop():
            while True:
                batch = await q.dequeue(size=3)
                if not batch:
                    return
                for t in batch:
                    await q.mark_as_complete(t.id, attempt=t.attempt_count)
                    mine.append(t.id)
        await asyncio.gather(*(loop() for _ in range(4)))
        await q.close()
        return mine
    out.put(asyncio.run(go()))


def test_several_processes_on_one_file_complete_each_task_once(db_url, run):
    async def setup():
        q = await opened(db_url)
        tasks = [make_task(f"p{i}") for i in range(1200)]
        for i in range(0, len(tasks), 100):
            await q.enqueue(tasks[i:i + 100])
        await q.close()
        return [t.id for t in tasks]
    ids = run(setup())
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, no inherited threads
    out = ctx.Queue()
    procs = [ctx.Process(target=_drain_in_a_process, args=(db_url, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    done = [i for r in results for i in r]
    assert sorted(done) == sorted(ids), "a task was completed twice or not at all"
    assert sum(1 for r in results if r) >= 2, "one process took all the work"

    async def check():
        q = await opened(db_url)
        stats = await q.get_queue_stats()
        await q.close()
        return stats
    assert run(check())["completed"] == 1200


def test_synthesize_from_python(run):
    speech = run(tts.synthesize(TextToSpeechRequest(text="Hello from Python.",
                                                    voice_id="espeak.en-us", format="flac")))
    assert speech.content_type == "audio/flac"
    assert speech.audio[:4] == b"fLaC" and speech.seconds > 0.5
    with pytest.raises(QueueError, match="VOXQ_ENGINE_KOKORO_URL"):
        run(tts.synthesize(TextToSpeechRequest(text="x", voice_id="kokoro.af_heart")))


class _Receiver(http.server.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.got.append((self.headers["webhook-id"], self.headers["Content-Type"], body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_builtin_worker_with_a_python_handler(db_url, monkeypatch, run):
    monkeypatch.setenv("VOXQ_WEBHOOK_ALLOW_NETS", "127.0.0.1/32")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    _Receiver.got.clear()

    async def go():
        q = await opened(db_url)
        builtin = voxq.BuiltinWorker(q, concurrency=2)
        # A Python handler in the guide's loop, doing the built-in processing.
        one = make_task("Processed from a Python loop.", url=url)
        await q.enqueue([one])
        (claimed,) = await q.dequeue(size=1)
        await builtin.process(claimed)
        assert (await q.get_task(one.id)).state == TaskState.COMPLETED
        # The built-in worker running on its own.
        many = [make_task(f"Background task {i}.", url=url) for i in range(5)]
        await q.enqueue(many)
        builtin.start()
        for _ in range(300):
            if (await q.get_queue_stats())["completed"] == 6:
                break
            await asyncio.sleep(0.05)
        builtin.stop()
        counters = builtin.counters
        stats = await q.get_queue_stats()
        await q.close()
        return stats, counters
    stats, counters = run(go())
    server.shutdown()
    assert stats["completed"] == 6
    assert counters["completed"] == 6 and counters["items_delivered"] == 6
    assert len(_Receiver.got) == 6
    # Standard Webhooks JSON events (the default payload), each with its WAV inline.
    for webhook_id, ct, body in _Receiver.got:
        assert ct == "application/json" and re.fullmatch(r"msg_[A-Za-z0-9_-]{27}", webhook_id)
        event = json.loads(body)
        assert event["type"] == "speech.item.ready"
        assert event["data"]["content_type"] == "audio/wav"
        assert base64.b64decode(event["data"]["audio_base64"])[:4] == b"RIFF"
