#!/usr/bin/python3
"""W1 driven from Python: the guide's API and worker loop on the C++ core.

Enqueue N tasks (~120-character texts) in batches of 100 with `await
queue.enqueue`, then drain them with 4 of the guide's worker loops under
asyncio.gather (dequeue a few, mark_as_complete each). Prints a RESULT line
like voxq_bench w1, so make bench can put the two side by side.

usage: PYTHONPATH=build/python bench/w1_python.py --db PATH --sync NORMAL|FULL --n N
"""
import argparse
import asyncio
import json
import os
import random
import time

from tts import TextToSpeechRequest
from worker import QueueConfig, Task, TaskItem, TaskState, WorkerQueue

WORDS = ("the quick brown fox jumps over a lazy dog while small birds sing softly in early "
         "morning light and people walk to work along quiet river streets near old stone "
         "bridges where children play before school begins each sunny day").split()


def text(rng):
    out = ""
    while len(out) < 118:
        out += (" " if out else "") + rng.choice(WORDS)
    return out[:119]


async def main(db, sync, n, loops):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    queue = WorkerQueue(QueueConfig(database_url=f"sqlite:///{db}", sqlite_synchronous=sync))
    await queue.initialize()
    rng = random.Random(42)
    start = time.perf_counter()
    for i in range(0, n, 100):
        batch = [Task(id="", state=TaskState.PENDING, schedule_at=0,
                      items=[TaskItem(request=TextToSpeechRequest(text=text(rng),
                                                                  voice_id="kokoro.af_heart"),
                                      response_url="http://127.0.0.1:9/cb")],
                      created_at=0, updated_at=0) for _ in range(min(100, n - i))]
        await queue.enqueue(batch)
    enqueue_rate = n / (time.perf_counter() - start)

    done = 0

    async def worker_loop():
        nonlocal done
        while done < n:
            tasks = await queue.dequeue(size=10)
            if not tasks:
                await asyncio.sleep(0.001)
                continue
            for task in tasks:
                await queue.mark_as_complete(task.id)
                done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker_loop() for _ in range(loops)))
    drain_rate = n / (time.perf_counter() - start)
    stats = await queue.get_queue_stats()
    await queue.close()
    print("RESULT " + json.dumps({
        "system": "voxq from Python", "store": f"SQLite WAL+{sync}", "n": n, "workers": loops,
        "enqueue": enqueue_rate, "drain": drain_rate, "verified": stats["completed"] == n}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--sync", default="NORMAL")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--loops", type=int, default=4)
    a = p.parse_args()
    asyncio.run(main(a.db, a.sync, a.n, a.loops))
