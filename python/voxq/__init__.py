"""voxq's own additions for Python: the built-in worker.

    from voxq import BuiltinWorker
    worker = BuiltinWorker(queue, concurrency=4)   # engines and webhooks from VOXQ_*
    worker.start() ... worker.stop()

or, inside your own loop, ``await worker.process(task)`` does what the built-in
worker does with one claimed task: synthesize each item, encode it, deliver it
as a signed webhook, and settle the task (complete, retry or discard).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Dict

import _voxq
from tts import Speech, TextToSpeechRequest, synthesize
from worker import Task, WorkerQueue, _item_tuples

__version__ = "0.1.0"


class BuiltinWorker:
    def __init__(self, queue: WorkerQueue, concurrency: int = 4, queue_name: str = "") -> None:
        self._core = _voxq.BuiltinWorker(queue._core, concurrency, queue_name)
        # process() blocks for a whole task (synthesis, delivery): off the loop.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)

    def start(self) -> None:
        """Processor threads and the retry sweep, in the background."""
        self._core.start()

    def stop(self) -> None:
        """Finishes tasks in flight (grace period), hands the rest back."""
        self._core.stop()

    async def process(self, task: Task) -> None:
        d = {"id": task.id, "state": task.state.value, "attempt_count": task.attempt_count,
             "items_delivered": task.items_delivered,
             "items": _item_tuples(0, task)}
        await asyncio.get_running_loop().run_in_executor(self._pool, self._core.process, d)

    @property
    def counters(self) -> Dict[str, int]:
        return dict(self._core.counters())


__all__ = ["BuiltinWorker", "Speech", "TextToSpeechRequest", "synthesize"]
