#!/usr/bin/env python3
"""The speech workload of `make bench` (issue 4).

1,000 espeak items of about 30 words each, delivered as signed WAV webhooks to a
`voxq sink` on loopback, on a fresh SQLite file each: by 1 `voxq worker` process
with raw and with JSON payloads, then by 2 with JSON (the default), then by 1 with
JSON and object storage (the interop tests' S3 store, when its npm packages are
installed). Next to it, in the same run, the same texts synthesized by
espeak-ng helpers alone (voxq_speech_bench): the baseline that says how much of
the wall time goes to anything but synthesis (queue + encoding + delivery).

Prints a Markdown table; BENCH_SPEECH_N overrides the item count.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
N = int(os.environ.get("BENCH_SPEECH_N", "1000"))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WORDS = ("the queue speaks every sentence clearly while workers deliver audio to "
         "waiting listeners across busy networks and quiet rooms with patience care "
         "and steady rhythm through morning evening light").split()


def texts(n):
    rng = random.Random(42)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(30)]
        out.append(" ".join(words).capitalize() + ".")
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(voxq, port, sink_dir, env=None):
    """`voxq sink` on loopback with the benchmark's secret, once it accepts."""
    sink = subprocess.Popen([voxq, "sink", "--port", str(port), "--dir", sink_dir, "--secret",
                             SECRET], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    sys.exit(f"voxq sink did not start on port {port}")


def cpu_seconds(pid):
    """User + system CPU time of a process so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def stats(env):
    out = subprocess.run([os.path.join(BIN, "voxq"), "stats", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def start_s3(work):
    """The interop tests' S3 store (tests/interop/s3_gate.cjs: in memory, every
    signature checked); its port, or None when its npm packages are missing."""
    interop = os.path.join(ROOT, "tests", "interop")
    if not os.path.isdir(os.path.join(interop, "node_modules")):
        return None, None
    gate = subprocess.Popen(["node", os.path.join(interop, "s3_gate.cjs"),
                             os.path.join(work, "s3.jsonl")],
                            env=dict(os.environ, S3_BUCKET="bench", S3_ACCESS_KEY="AKIDBENCH",
                                     S3_SECRET_KEY="bench-secret"),
                            stdout=subprocess.PIPE, text=True)
    return gate, int(gate.stdout.readline().split()[1])


def repeated_texts(n, unique_share=0.1):
    """A workload of prompts: 10% of the items say something new, 90% repeat one
    of a few sentences (notifications, IVR menus), in a random order."""
    rng = random.Random(7)
    fresh = texts(n)
    prompts = fresh[:20]
    return [fresh[i] if rng.random() < unique_share else rng.choice(prompts) for i in range(n)]


def run_workers(processes, lines, work, payload, s3_port=None, cache=False, label=""):
    name = f"{processes}-{payload}" + ("-s3" if s3_port else "") + ("-cache" if cache else "") + label
    db = os.path.join(work, f"speech-{name}.db")
    env = dict(os.environ, QUEUE_DATABASE_URL=f"sqlite:///{db}", VOXQ_WEBHOOK_PAYLOAD=payload,
               VOXQ_WEBHOOK_SECRET=SECRET, VOXQ_WEBHOOK_ALLOW_NETS="127.0.0.1/32")
    env.pop("VOXQ_SPEECH_CACHE_DIR", None)
    if cache:
        env["VOXQ_SPEECH_CACHE_DIR"] = os.path.join(work, f"cache-{name}")
    if s3_port:
        env.update(VOXQ_STORAGE_URL="s3://bench/speech", AWS_ACCESS_KEY_ID="AKIDBENCH",
                   AWS_SECRET_ACCESS_KEY="bench-secret",
                   VOXQ_S3_ENDPOINT=f"http://127.0.0.1:{s3_port}")
    port = free_port()
    sink_dir = os.path.join(work, f"sink-{name}")
    sink = start_sink(os.path.join(BIN, "voxq"), port, sink_dir, env)
    jsonl = os.path.join(work, f"tasks-{name}.jsonl")
    with open(jsonl, "w") as f:
        for t in lines:
            f.write(json.dumps({"items": [{"request": {"text": t, "voice_id": "espeak.en-us"},
                                           "response_url": f"http://127.0.0.1:{port}/"}]}) + "\n")
    subprocess.run([os.path.join(BIN, "voxq"), "enqueue", "--file", jsonl], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    logs = [os.path.join(work, f"worker-{name}-{i}.log") for i in range(processes)]
    start = time.monotonic()
    workers = [subprocess.Popen([os.path.join(BIN, "voxq"), "worker"], env=env,
                                stderr=open(log, "w")) for log in logs]
    # Watch the receiver's log (a file read) rather than spawning `voxq stats`
    # every few milliseconds, which would take CPU from the workers.
    index = os.path.join(sink_dir, "deliveries.jsonl")
    while True:
        try:
            with open(index, "rb") as f:
                if f.read().count(b"\n") >= len(lines):
                    break
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    while True:  # the last acknowledgements follow their deliveries
        s = stats(env)
        if s["completed"] + s["discarded"] >= len(lines):
            break
        time.sleep(0.01)
    wall = time.monotonic() - start
    cpu = {"sink": cpu_seconds(sink.pid), "workers": sum(cpu_seconds(w.pid) for w in workers),
           "espeak helpers": sum(cpu_seconds(c) for w in workers for c in children(w.pid))}
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait()
    sink.send_signal(signal.SIGTERM)
    sink.wait()
    totals = {"audio": 0.0, "synthesis": 0.0, "encoding": 0.0, "delivery": 0.0, "hits": 0,
              "misses": 0}
    for log in logs:
        text = open(log).read()
        m = re.search(r"audio_seconds=([\d.]+) synthesis_seconds=([\d.]+) "
                      r"encoding_seconds=([\d.]+) delivery_seconds=([\d.]+)", text)
        c = re.search(r"speech_cache_hits=(\d+) speech_cache_misses=(\d+)", text)
        if not m or not c:
            sys.exit(f"no summary in {log}:\n{text}")
        for key, value in zip(("audio", "synthesis", "encoding", "delivery"), m.groups()):
            totals[key] += float(value)
        totals["hits"] += int(c.group(1))
        totals["misses"] += int(c.group(2))
    delivered = sum(1 for _ in open(os.path.join(sink_dir, "deliveries.jsonl")))
    return {"processes": processes,
            "payload": payload + (" + S3 storage" if s3_port else "") + (" + speech cache" if cache else "")
            + label,
            "wall": wall, "completed": s["completed"],
            "discarded": s["discarded"], "delivered": delivered, "cpu": cpu, **totals}


def main():
    lines = texts(N)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="voxq-speech-") as work:
        with open(os.path.join(work, "texts.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"speech: espeak alone, {cores} helper processes ...", file=sys.stderr)
        out = subprocess.run([os.path.join(BIN, "voxq_speech_bench"), "--texts",
                              os.path.join(work, "texts.txt"), "--processes", str(cores)],
                             capture_output=True, text=True, check=True).stdout
        base = json.loads(out.split("RESULT ", 1)[1])
        runs = []
        # The payload kinds side by side (SPEC §7): raw audio bodies, and JSON
        # events carrying the audio as base64 (the default).
        for processes, payload in ((1, "raw"), (1, "json"), (2, "json")):
            print(f"speech: {N} items, {processes} voxq worker process(es), {payload} payload ...",
                  file=sys.stderr)
            runs.append(run_workers(processes, lines, work, payload))
        # Prompts that repeat (90% of items), without and with the speech cache.
        prompts = repeated_texts(N)
        for cache in (False, True):
            print(f"speech: {N} items, 90% repeated, 1 voxq worker process, json, "
                  f"{'with' if cache else 'no'} speech cache ...", file=sys.stderr)
            runs.append(run_workers(1, prompts, work, "json", cache=cache,
                                    label=", 90% repeated texts"))
        # And with object storage: the event links to the audio, uploaded first.
        gate, s3_port = start_s3(work)
        if gate:
            print(f"speech: {N} items, 1 voxq worker process, json + S3 storage ...",
                  file=sys.stderr)
            runs.append(run_workers(1, lines, work, "json", s3_port))
            gate.terminate()
            gate.wait()

    base_rate = base["items"] / base["seconds"]
    print(f"| speech, {N} items of 30 words (espeak, WAV, signed webhooks to voxq sink) "
          "| items/s | audio s per wall s | vs espeak alone | outside synthesis "
          "| worker CPU per item | worker CPU / espeak CPU | sink CPU per item | syntheses |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| espeak alone ({base['processes']} helpers, no queue/encoding/delivery) "
          f"| {base_rate:.1f} | {base['audio_seconds'] / base['seconds']:.1f} | 1.00x | - | - | - | - | {N} |")
    for r in runs:
        rate = r["completed"] / r["wall"]
        busy = r["synthesis"] + r["encoding"] + r["delivery"]
        outside = (r["encoding"] + r["delivery"]) / busy if busy else 0
        per_item = 1000 / max(r["completed"], 1)
        print(f"| voxq, {r['processes']} worker process(es), {r['payload']} payload | {rate:.1f} "
              f"| {r['audio'] / r['wall']:.1f} | {rate / base_rate:.2f}x "
              f"| {100 * (1 - rate / base_rate):.1f}% of wall ({100 * outside:.1f}% of processor time) "
              f"| {r['cpu']['workers'] * per_item:.2f} ms "
              f"| {100 * r['cpu']['workers'] / max(r['cpu']['espeak helpers'], 1e-9):.1f}% "
              f"| {r['cpu']['sink'] * per_item:.2f} ms "
              f"| {r['misses'] if r['hits'] + r['misses'] else r['completed']} |")
    print()
    for r in runs:
        print(f"- {r['processes']} process(es), {r['payload']}: {r['completed']} completed, {r['discarded']} discarded, "
              f"{r['delivered']} deliveries saved; processor time: synthesis {r['synthesis']:.1f} s, "
              f"encoding {r['encoding']:.2f} s, delivery {r['delivery']:.2f} s; CPU used: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in r["cpu"].items())
              + f" (of {r['wall'] * os.cpu_count():.1f} s available)")


if __name__ == "__main__":
    main()
