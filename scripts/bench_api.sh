#!/usr/bin/env bash
# The HTTP API under load (issue 5): POST /v1/tasks with 1-task and 100-task
# bodies, driven by wrk on loopback against `voxq serve` with its worker pool on
# (the workers synthesize what arrives, competing for the same cores), on a fresh
# SQLite file with the default synchronous=FULL. Prints a Markdown table.
#   BENCH_API_SECONDS=10   duration of each wrk run
#   VOXQ_BENCH_BINARY=build/bin/voxq   the voxq under test; VOXQ_BENCH_LABEL names it
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_API_SECONDS:-10}
work=$(mktemp -d /tmp/voxq-api-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
QUEUE_DATABASE_URL="sqlite:///$work/queue.db" VOXQ_WEBHOOK_ALLOW_NETS=127.0.0.1/32 \
  "${VOXQ_BENCH_BINARY:-build/bin/voxq}" serve --port "$port" ${VOXQ_BENCH_SERVE_FLAGS:-} 2> "$work/serve.log" &
serve=$!
trap 'kill -TERM $serve 2>/dev/null; wait $serve 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
results="$work/results.jsonl"
for batch in 1 100; do
  echo "voxq serve: POST /v1/tasks, $batch task(s) per request, wrk -t2 -c16 -d${seconds}s ..." >&2
  VOXQ_BATCH=$batch VOXQ_INBOX="http://127.0.0.1:$port/inbox" \
    wrk -t2 -c16 -d"${seconds}s" -s bench/wrk/post_tasks.lua "http://127.0.0.1:$port/v1/tasks" \
    | sed -n 's/^RESULT //p' >> "$results"
done
stored=$(curl -fs "http://127.0.0.1:$port/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
label="worker pool on"
[ -n "${VOXQ_BENCH_SERVE_FLAGS:-}" ] && label="serve $VOXQ_BENCH_SERVE_FLAGS"
[ -n "${VOXQ_BENCH_LABEL:-}" ] && label="$label, $VOXQ_BENCH_LABEL"
python3 - "$results" "$stored" "$label" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"| POST /v1/tasks (wrk -t2 -c16, loopback, {sys.argv[3]}, SQLite FULL) | requests/s | tasks/s | p50 ms | p99 ms | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
sent = 0
for r in rows:
    rps = r["requests"] / r["seconds"]
    sent += r["requests"] * r["batch"]
    print(f"| {r['batch']} task(s) per request | {rps:,.0f} | {rps * r['batch']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
print()
stored = int(sys.argv[2])
# wrk counts the responses it read; requests still in flight when a run ended were
# stored too (at most 16 connections x 100 tasks more).
ok = sent <= stored <= sent + 16 * 101
print(f"- tasks acknowledged to wrk: {sent:,}; tasks stored: {stored:,} "
      f"({'consistent' if ok else 'MISMATCH'})")
PY
