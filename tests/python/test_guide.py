"""Every code block of the user's guide, run as written on voxq.

Each block gets only what it leaves undefined: process_tts_task/process_task, a
temporary database, and for fragments the `queue` and the ids they name. Then
its observable results are checked.
"""
import ast
import asyncio
import collections
import os
import pathlib
import subprocess
import sys

import pytest

import tts
import worker
from conftest import GUIDE, guide_blocks
from tts import TextToSpeechRequest
from worker import QueueConfig, Task, TaskItem, TaskState, WorkerQueue

BLOCKS = guide_blocks()


def block(heading, language="python"):
    found = [code for h, lang, code in BLOCKS if h == heading and lang == language]
    assert len(found) == 1, f"the guide has {len(found)} {language} blocks under {heading!r}"
    return found[0]


def guide_names():
    """What a fragment may use without importing it (the guide's imports)."""
    return {name: getattr(worker, name) for name in worker.__all__} | {
        "TextToSpeechRequest": TextToSpeechRequest, "asyncio": asyncio}


async def run_fragment(code, namespace):
    """Runs a fragment that uses top-level await, as a notebook would."""
    compiled = compile(code, "<guide>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)  # noqa: S307 - the guide's own code
    if asyncio.iscoroutine(result):
        await result


async def open_queue():
    queue = WorkerQueue(QueueConfig.from_env())
    await queue.initialize()
    return queue


def make_task(text="Hi", task_id=""):
    return Task(id=task_id, state=TaskState.PENDING, schedule_at=0,
                items=[TaskItem(TextToSpeechRequest(text=text, voice_id="espeak.en-us"),
                                "https://webhook.example.com")],
                created_at=0, updated_at=0)


async def task_in(queue, state):
    """A task in `state`, made through the API."""
    t = make_task(f"a task to be {state.value}")
    await queue.enqueue([t])
    if state == TaskState.PENDING:
        return t.id
    (claimed,) = await queue.dequeue(size=1)
    assert claimed.id == t.id
    if state == TaskState.DISCARDED:
        await queue.mark_as_discarded(t.id)
    elif state == TaskState.RETRYABLE:
        await queue.mark_as_retry(t.id, "boom")
    return t.id


def test_the_guide_here_is_the_users_guide():
    seed = pathlib.Path(__file__).resolve().parents[3] / "shared" / "seed"
    if not seed.is_dir():
        pytest.skip("../shared/seed is not next to this checkout")
    texts = [p.read_text() for p in sorted(seed.iterdir()) if p.is_file()]
    assert GUIDE.read_text() in texts, "docs/guide.md differs from ../shared/seed"


def test_quick_start(db_url, capsys):
    calls = []

    async def process_tts_task(task):
        calls.append(task.id)
        return True

    exec(block("Quick Start"), {"process_tts_task": process_tts_task, "__name__": "guide"})
    assert "Processed 0 retry tasks" in capsys.readouterr().out
    assert len(calls) == 1

    async def check():
        queue = await open_queue()
        stats = await queue.get_queue_stats()
        (task, *_), _ = await queue.list_tasks()
        await queue.close()
        return stats, task
    stats, task = asyncio.run(check())
    assert stats["completed"] == 1 and stats["total"] == 1
    assert task.id == calls[0] and len(task.id) == 26  # a ULID
    assert task.items[0].request.voice_id == "kokoro.af_heart"


def test_configuration_from_the_environment(tmp_path):
    script = block("Configuration", "bash") + (
        f"\ncd {tmp_path} && PYTHONPATH={os.pathsep.join(sys.path)} {sys.executable} -c "
        "'from worker import QueueConfig; c = QueueConfig.from_env(); "
        "print(c.database_url, c.default_max_attempts, c.default_visibility_timeout, "
        "c.retry_backoff_multiplier, c.retry_base_delay, c.max_retry_delay, c.batch_size)'\n")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["sqlite+aiosqlite:///data/queue.db", "3", "3600.0", "2.0", "60.0",
                           "3600.0", "100"]


def test_configuration_object():
    namespace = {}
    exec(block("Configuration"), namespace)
    config = namespace["config"]
    assert config == QueueConfig()  # the guide's values are the defaults
    assert config.batch_size == 100 and config.default_visibility_timeout == 3600
    with pytest.raises(worker.ConfigError, match="default_max_attempts"):
        QueueConfig(default_max_attempts=0)


def test_enqueue_tasks(db_url, capsys, run):
    async def go():
        queue = await open_queue()
        namespace = guide_names() | {"queue": queue}
        await run_fragment(block("Enqueue Tasks"), namespace)
        stats = await queue.get_queue_stats()
        await queue.close()
        return namespace, stats
    namespace, stats = run(go())
    assert namespace["count"] == 3
    assert "Enqueued 3 tasks" in capsys.readouterr().out
    assert stats["pending"] == 3
    assert all(len(t.id) == 26 and t.created_at > 0 for t in namespace["tasks"])


def test_dequeue_tasks(db_url, capsys, run):
    async def go():
        queue = await open_queue()
        await queue.enqueue([make_task("one"), make_task("two")])
        namespace = guide_names() | {"queue": queue}
        await run_fragment(block("Dequeue Tasks"), namespace)
        states = [(await queue.get_task(t.id)).state for t in namespace["tasks"]]
        await queue.close()
        return namespace, states
    namespace, states = run(go())
    assert len(namespace["tasks"]) == 2
    assert states == [TaskState.PROCESSING] * 2
    out = capsys.readouterr().out
    for t in namespace["tasks"]:
        assert f"Processing task {t.id} with 1 items" in out


# The "Handle Task Completion" block lists calls as a menu: each runs against a
# task in the state it needs, and must leave it in the state it names.
MENU = {
    "mark_as_complete": (TaskState.PROCESSING, TaskState.COMPLETED),
    "mark_as_retry": (TaskState.PROCESSING, TaskState.RETRYABLE),
    "mark_as_cancelled": (TaskState.PENDING, TaskState.CANCELLED),
    "mark_as_discarded": (TaskState.PROCESSING, TaskState.DISCARDED),
    "mark_as_resume": (TaskState.DISCARDED, TaskState.PENDING),
}


def test_handle_task_completion(db_url, run):
    calls = [line for line in block("Handle Task Completion").splitlines()
             if line.startswith("await ")]
    assert sorted(c.split("(")[0].split(".")[1] for c in calls) == sorted(MENU)

    async def go():
        queue = await open_queue()
        for call in calls:
            operation = call.split("(")[0].split(".")[1]
            before, after = MENU[operation]
            task_id = await task_in(queue, before)
            await run_fragment(call, {"queue": queue, "task_id": task_id})
            task = await queue.get_task(task_id)
            assert task.state == after, f"{call}: {task.state}"
            if operation == "mark_as_retry":
                assert task.last_error == "Connection timeout"
        await queue.close()
    run(go())


def test_process_retries(db_url, monkeypatch, run):
    # The guide's defaults back off 60 s and more; with no base delay the three
    # attempts of the second task happen now.
    monkeypatch.setenv("QUEUE_RETRY_BASE_DELAY", "0")

    async def go():
        queue = await open_queue()
        spent = make_task("out of attempts")
        await queue.enqueue([spent])
        for attempt in range(3):
            (claimed,) = await queue.dequeue(size=1)
            assert claimed.id == spent.id and claimed.attempt_count == attempt + 1
            await queue.mark_as_retry(spent.id, f"failure {attempt + 1}")
            if attempt < 2:
                await queue.retry()
        again = await task_in(queue, TaskState.RETRYABLE)  # a first failure
        namespace = {"queue": queue}
        await run_fragment(block("Process Retries"), namespace)
        moved = {t.id: t for t in namespace["retry_tasks"]}
        again_task = await queue.get_task(again)
        spent_task = await queue.get_task(spent.id)
        await queue.close()
        return moved, again_task, spent_task
    moved, again_task, spent_task = run(go())
    assert set(moved) == {again_task.id, spent_task.id}
    assert again_task.state == TaskState.PENDING
    assert spent_task.state == TaskState.DISCARDED  # attempt_count >= max_attempts
    assert spent_task.last_error == "failure 3"


def test_error_handling(db_url, capsys, run):
    async def go():
        queue = await open_queue()
        done = make_task("done", task_id="completed-task-id")
        await queue.enqueue([done])
        await queue.dequeue(size=1)
        await queue.mark_as_complete("completed-task-id")
        await run_fragment(block("Error Handling"), {"queue": queue})
        state = (await queue.get_task("completed-task-id")).state
        await queue.close()
        return state
    assert run(go()) == TaskState.COMPLETED
    out = capsys.readouterr().out
    assert "Task not found" in out and "Invalid state transition" in out


def test_queue_statistics(db_url, capsys, run):
    async def go():
        queue = await open_queue()
        await queue.enqueue([make_task(str(i)) for i in range(5)])
        await queue.dequeue(size=2)
        namespace = {"queue": queue}
        await run_fragment(block("Queue Statistics"), namespace)
        await queue.close()
        return namespace["stats"]
    stats = run(go())
    assert stats["pending"] == 3 and stats["processing"] == 2 and stats["total"] == 5
    assert "'pending': 3" in capsys.readouterr().out


def test_worker_pattern(db_url, monkeypatch, run):
    monkeypatch.setenv("QUEUE_RETRY_BASE_DELAY", "0")
    processed = collections.Counter()
    failures = collections.Counter()

    async def process_task(task):
        await asyncio.sleep(0)
        if task.items[0].request.text == "fail once" and not failures[task.id]:
            failures[task.id] += 1
            raise RuntimeError("the first attempt fails")
        processed[task.id] += 1
        return True

    namespace = guide_names() | {"process_task": process_task, "__name__": "guide"}
    exec(block("Worker Pattern"), namespace)

    async def go():
        queue = await open_queue()
        tasks = [make_task(f"task {i}") for i in range(40)] + [make_task("fail once")]
        await queue.enqueue(tasks)
        await queue.close()
        loops = asyncio.create_task(namespace["main"]())  # the guide's two workers + retries
        check = await open_queue()
        for _ in range(300):  # the retry loop runs every 10 s
            stats = await check.get_queue_stats()
            if stats["completed"] == len(tasks):
                break
            await asyncio.sleep(0.1)
        loops.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loops
        stats = await check.get_queue_stats()
        await check.close()
        return tasks, stats
    tasks, stats = run(go(), timeout=90)
    assert stats["completed"] == len(tasks), stats
    assert all(processed[t.id] == 1 for t in tasks), "a task was processed twice or never"
    assert sum(failures.values()) == 1
