"""One process of the crash campaign (tests/chaos/chaos.py), through the public
Python API: it enqueues tasks one by one and prints `ack <id> <items>` (flushed)
after each enqueue returned, so the runner knows exactly what was acknowledged
before it killed this process. With --work it also runs the built-in worker in
this process (engines and webhooks from VOXQ_*), for trials where this must be
the only process writing (a simulated power cut).

Errors from the store (a full disk, an injected I/O error, a server away) are
printed as `error ...` and the loop goes on: a refused write was not
acknowledged, and the next one may succeed.
"""
import argparse
import asyncio
import os
import random
import sys

from tts import TextToSpeechRequest
from worker import QueueConfig, Task, TaskItem, TaskState, WorkerQueue


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())  # one write: a kill never leaves half a line


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the receiver's base URL")
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--pause", type=float, default=0.01)
    ap.add_argument("--work", type=int, default=0, help="built-in worker threads")
    args = ap.parse_args()
    rng = random.Random(os.getpid())
    queue = WorkerQueue(QueueConfig.from_env())
    for _ in range(200):
        try:
            await queue.initialize()
            break
        except Exception as e:  # the server may be away for a moment
            say(f"error initialize {type(e).__name__}")
            await asyncio.sleep(0.1)
    else:
        return 1
    worker = None
    if args.work:
        from voxq import BuiltinWorker
        worker = BuiltinWorker(queue, concurrency=args.work)
        worker.start()
    say("ready")
    for n in range(args.tasks):
        items = [
            TaskItem(request=TextToSpeechRequest(text=f"Task {n}, item {i}.", voice_id="espeak.en-us"),
                     response_url=f"{args.url}/hook")
            for i in range(rng.randint(1, 3))
        ]
        task = Task(id="", state=TaskState.PENDING, schedule_at=0, items=items, created_at=0,
                    updated_at=0)
        try:
            await queue.enqueue([task])
            say(f"ack {task.id} {len(items)}")
        except Exception as e:
            say(f"error enqueue {type(e).__name__}: {str(e)[:200]}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.pause * rng.random() * 2)
    if worker is not None:
        worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
