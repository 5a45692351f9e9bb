#!/usr/bin/env python3
"""What `voxq sink` costs per delivery (issue 16): N signed JSON deliveries of a
WAV-sized item (the bytes the speech benchmark's worker sends), posted by C
client threads on keep-alive connections; prints the sink's CPU per delivery
and deliveries per second. Requests are built and signed before the clock
starts, so the clients spend little CPU while it runs.

Usage: bench_sink.py [--n N] [--clients C] [--bytes B] [--voxq PATH]
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import tempfile
import threading
import time

from bench_speech import SECRET, cpu_seconds, free_port, start_sink  # the speech run's receiver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def request(i, audio):
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    data = {"task_id": f"bench{i:06d}", "item_index": 0, "item_count": 1, "attempt": 1,
            "voice_id": "espeak.en-us", "format": "wav", "content_type": "audio/wav",
            "bytes": len(audio), "sha256": hashlib.sha256(audio).hexdigest(),
            "audio_base64": base64.b64encode(audio).decode()}
    # Compact, the audio last: as voxq's worker sends it.
    body = json.dumps({"type": "speech.item.ready", "timestamp": "2026-12-01T00:00:00Z",
                       "data": data}, separators=(",", ":")).encode()
    msg_id, ts = f"msg_bench{i:06d}", str(int(time.time()))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body,
                                    hashlib.sha256).digest()).decode()
    return body, {"content-type": "application/json", "webhook-id": msg_id,
                  "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--bytes", type=int, default=440_000)  # a 30-word espeak item as WAV
    ap.add_argument("--voxq", default=os.path.join(ROOT, "build", "bin", "voxq"))
    args = ap.parse_args()
    audio = os.urandom(args.bytes)
    requests = [request(i, audio) for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="voxq-sink-bench-") as work:
        port = free_port()
        sink = start_sink(args.voxq, port, os.path.join(work, "sink"))
        failures = []

        def client(k):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for body, headers in requests[k::args.clients]:
                conn.request("POST", "/", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    failures.append(r.status)

        cpu_before = cpu_seconds(sink.pid)
        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        cpu = cpu_seconds(sink.pid) - cpu_before
        sink.terminate()
        sink.wait()
        saved = sum(1 for _ in open(os.path.join(work, "sink", "deliveries.jsonl")))
    if failures or saved != args.n:
        sys.exit(f"sink bench: {len(failures)} failed answers, {saved} of {args.n} saved")
    result = {"deliveries": args.n, "clients": args.clients, "bytes": args.bytes,
              "seconds": wall, "per_s": args.n / wall, "cpu_ms_per_delivery": 1000 * cpu / args.n}
    print(f"sink: {args.n} deliveries of {args.bytes} bytes, {args.clients} clients: "
          f"{result['per_s']:.0f}/s, {result['cpu_ms_per_delivery']:.2f} ms CPU per delivery",
          file=sys.stderr)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
