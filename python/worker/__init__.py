"""The guide's queue API on voxq's C++ core.

    from worker import WorkerQueue, Task, TaskItem, TaskState, QueueConfig

Every operation is a coroutine. The store work runs on C++ threads of the
queue's own, without the GIL, so the event loop never waits on the database and
many coroutines (several worker loops under asyncio.gather) run at once.
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import _voxq
from tts import TextToSpeechRequest

QueueError = _voxq.QueueError
TaskNotFoundError = _voxq.TaskNotFoundError
InvalidStateTransitionError = _voxq.InvalidStateTransitionError
DuplicateTaskError = _voxq.DuplicateTaskError
ValidationError = _voxq.ValidationError
ConfigError = _voxq.ConfigError
StoreError = _voxq.StoreError


class TaskState(str, enum.Enum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    RETRYABLE = "RETRYABLE"
    CANCELLED = "CANCELLED"
    DISCARDED = "DISCARDED"

    def __str__(self) -> str:
        return self.value


@dataclass
class TaskItem:
    request: TextToSpeechRequest
    response_url: str


@dataclass
class TaskError:
    attempt: int
    at: float
    message: str


@dataclass
class Task:
    """A task as the guide builds it; the fields after ``updated_at`` are voxq's."""

    id: str = ""
    state: TaskState = TaskState.PENDING
    schedule_at: float = 0
    items: List[TaskItem] = field(default_factory=list)
    created_at: float = 0
    updated_at: float = 0
    attempt_count: int = 0
    last_error: str = ""
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 0
    dedup_key: Optional[str] = None
    heartbeat_at: float = 0
    items_delivered: int = 0
    error_history: List[TaskError] = field(default_factory=list)


def _task(d: dict) -> Task:
    return Task(
        id=d["id"], state=TaskState(d["state"]), schedule_at=d["schedule_at"],
        items=[TaskItem(TextToSpeechRequest(text, voice, speed, fmt), url)
               for text, voice, speed, fmt, url in d["items"]],
        created_at=d["created_at"], updated_at=d["updated_at"],
        attempt_count=d["attempt_count"], last_error=d["last_error"], queue=d["queue"],
        priority=d["priority"], max_attempts=d["max_attempts"], dedup_key=d["dedup_key"],
        heartbeat_at=d["heartbeat_at"], items_delivered=d["items_delivered"],
        error_history=[TaskError(*e) for e in d["error_history"]])


_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def _typed(where: str, value, kind):
    """`value` as `kind` (int, float or str), or TypeError/ValidationError naming
    the field: wrong types are TypeError, out of range is ValidationError."""
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(f"{where}: must be str, got {type(value).__name__}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise TypeError(f"{where}: must be {kind.__name__}, got {type(value).__name__}")
    if kind is int and not _INT64[0] <= value <= _INT64[1]:
        raise ValidationError(f"{where}: {value} is out of range")
    return kind(value)


def _item_tuples(index: int, t: Task) -> list:
    """The items as the C++ core takes them: (text, voice_id, speed, format, url)."""
    items = []
    for k, item in enumerate(t.items):
        if not isinstance(item, TaskItem) or not isinstance(item.request, TextToSpeechRequest):
            raise ValidationError(f"task {index}: items[{k}]: not a TaskItem with a "
                                  "TextToSpeechRequest")
        r = item.request
        at = f"task {index}: items[{k}]."
        items.append((_typed(at + "request.text", r.text, str),
                      _typed(at + "request.voice_id", r.voice_id, str),
                      _typed(at + "request.speed", r.speed, float),
                      _typed(at + "request.format", r.format, str),
                      _typed(at + "response_url", item.response_url, str)))
    return items


def _new_task(index: int, t: Task) -> tuple:
    if not isinstance(t, Task):
        raise ValidationError(f"task {index}: not a Task (got {type(t).__name__})")
    if not isinstance(t.items, list):
        raise TypeError(f"task {index}: items: must be a list, got {type(t.items).__name__}")
    items = _item_tuples(index, t)
    state = t.state.value if isinstance(t.state, TaskState) else _typed(
        f"task {index}: state", t.state, str)
    at = f"task {index}: "
    return (_typed(at + "id", t.id or "", str), state,
            _typed(at + "schedule_at", t.schedule_at or 0, float), items,
            _typed(at + "created_at", t.created_at or 0, float),
            _typed(at + "updated_at", t.updated_at or 0, float),
            _typed(at + "queue", t.queue or "default", str),
            _typed(at + "priority", t.priority or 0, int),
            _typed(at + "max_attempts", t.max_attempts or 0, int),
            _typed(at + "dedup_key", t.dedup_key or "", str))


def _config_from_env(cls) -> "QueueConfig":
    """Reads QUEUE_* and VOXQ_* variables; ConfigError names a bad one."""
    return cls(**_voxq.config_from_env())


def _config_post_init(self) -> None:
    _voxq.config_check(dataclasses.asdict(self))  # ConfigError naming the field


# The guide's settings (QUEUE_*), then voxq's own (VOXQ_*); see the README. Its
# fields, types and defaults come from the C++ core's one table of them
# (voxq::config_fields), so a new setting needs no edit here.
QueueConfig = dataclasses.make_dataclass(
    "QueueConfig",
    [(name, type(default), field(default=default))
     for name, default in _voxq.config_defaults().items()],
    namespace={"__post_init__": _config_post_init,
               "from_env": classmethod(_config_from_env),
               "__doc__": "The guide's settings (QUEUE_*), then voxq's own (VOXQ_*); "
                          "see the README."},
)
QueueConfig.__module__ = __name__


class WorkerQueue:
    """The queue. Create it, ``await initialize()``, use it, ``await close()``.

    Calls run on C++ threads of the queue's own (``threads``), never holding the
    GIL; finished calls wake the event loop through a file descriptor it
    watches, so an ``await`` never blocks the loop and costs no Python thread.
    Use a queue from one event loop at a time.
    """

    def __init__(self, config: Optional[QueueConfig] = None, *, threads: int = 16) -> None:
        self.config = config if config is not None else QueueConfig.from_env()
        self._core = _voxq.Queue(dataclasses.asdict(self.config), threads)
        self._futures: Dict[int, asyncio.Future] = {}
        self._tokens = itertools.count()
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # Operations whose first argument is a task id, and the ones with an attempt.
    _BY_ID = {"complete", "retry_later", "cancel", "discard", "resume", "heartbeat", "release",
              "mark_item_delivered", "get_task"}

    def _call(self, op: str, *args) -> "asyncio.Future":
        if op in self._BY_ID:
            _typed("task_id", args[0], str)
            attempt = args[2] if op in ("retry_later", "mark_item_delivered") else (
                args[1] if len(args) > 1 else None)
            if attempt is not None and op != "get_task":
                _typed("attempt", attempt, int)
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._watch(loop)
        token = next(self._tokens)
        future = loop.create_future()
        self._futures[token] = future
        try:
            getattr(self._core, op)(token, *args)  # one typed method per operation
        except BaseException:
            del self._futures[token]
            raise
        return future

    def _watch(self, loop) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._core.fileno())
        loop.add_reader(self._core.fileno(), self._finish)
        self._loop = loop

    def _finish(self) -> None:
        for token, ok, value in self._core.completions():
            future = self._futures.pop(token, None)
            if future is None or future.done():
                continue  # its awaiting coroutine was cancelled
            if ok:
                future.set_result(value)
            else:
                error_class, message = value
                future.set_exception(getattr(_voxq, error_class)(message))

    async def initialize(self) -> None:
        await self._call("initialize")

    async def enqueue(self, tasks: List[Task]) -> int:
        """Stores every task or none; fills in ids and timestamps on your objects."""
        tasks = list(tasks)
        count, filled = await self._call("enqueue", [_new_task(i, t) for i, t in enumerate(tasks)])
        for t, (task_id, schedule_at, created_at, updated_at) in zip(tasks, filled):
            t.id, t.schedule_at, t.created_at, t.updated_at = (
                task_id, schedule_at, created_at, updated_at)
        return count

    async def dequeue(self, size: Optional[int] = None, queue: str = "") -> List[Task]:
        return [_task(d) for d in await self._call("dequeue", size, queue)]

    async def mark_as_complete(self, task_id: str, attempt: Optional[int] = None) -> None:
        await self._call("complete", task_id, attempt)

    async def mark_as_retry(self, task_id: str, error: str, attempt: Optional[int] = None,
                            not_before: Optional[float] = None) -> None:
        await self._call("retry_later", task_id, error, attempt, not_before)

    async def mark_as_cancelled(self, task_id: str, attempt: Optional[int] = None) -> None:
        await self._call("cancel", task_id, attempt)

    async def mark_as_discarded(self, task_id: str, attempt: Optional[int] = None,
                                error: Optional[str] = None) -> None:
        await self._call("discard", task_id, attempt, error)

    async def mark_as_resume(self, task_id: str, attempt: Optional[int] = None) -> None:
        await self._call("resume", task_id, attempt)

    async def retry(self, size: Optional[int] = None, visibility_timeout: Optional[float] = None,
                    max_attempts: Optional[int] = None) -> List[Task]:
        return [_task(d) for d in
                await self._call("retry", size, visibility_timeout, max_attempts)]

    async def get_queue_stats(self, queue: str = "") -> Dict[str, int]:
        return dict(await self._call("stats", queue))

    # Beyond the guide.
    async def heartbeat(self, task_id: str, attempt: Optional[int] = None) -> None:
        await self._call("heartbeat", task_id, attempt)

    async def release(self, task_id: str, attempt: Optional[int] = None) -> None:
        await self._call("release", task_id, attempt)

    async def mark_item_delivered(self, task_id: str, item_index: int,
                                  attempt: Optional[int] = None) -> None:
        await self._call("mark_item_delivered", task_id, item_index, attempt)

    async def get_task(self, task_id: str) -> Task:
        return _task(await self._call("get_task", task_id))

    async def list_tasks(self, state: Optional[TaskState] = None, queue: str = "",
                         limit: int = 50, cursor: str = ""):
        """Newest first; returns (tasks, next_cursor) with next_cursor "" at the end."""
        dicts, next_cursor = await self._call(
            "list_tasks", TaskState(state).value if state else "", queue, limit, cursor)
        return [_task(d) for d in dicts], next_cursor

    async def purge(self, states: List[TaskState], older_than: float) -> int:
        return await self._call("purge", [TaskState(s).value for s in states], older_than)

    async def close(self) -> None:
        await self._call("close")
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._core.fileno())
        self._loop = None
        self._core.shutdown()


__all__ = ["WorkerQueue", "Task", "TaskItem", "TaskState", "TaskError", "QueueConfig",
           "TextToSpeechRequest", "QueueError", "TaskNotFoundError",
           "InvalidStateTransitionError", "DuplicateTaskError", "ValidationError",
           "ConfigError", "StoreError"]
