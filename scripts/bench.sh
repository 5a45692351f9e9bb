#!/usr/bin/env bash
# `make bench`: workload W1 (../shared/peers/README.md) on voxq's SQLite store,
# next to the LIMIT C baseline of ../shared/peers measured in the same run, plus
# get_queue_stats() with many tasks stored. Prints a Markdown table.
#
#   BENCH_N=20000            tasks per W1 run
#   BENCH_STATS_ROWS=1000000 tasks stored for the stats run (10000000 for the 10M figure)
#   VOXQ_PEERS_DIR=../shared/peers   where the LIMIT C source lives (skipped if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_N:-20000}
STATS_ROWS=${BENCH_STATS_ROWS:-1000000}
PEERS=${VOXQ_PEERS_DIR:-../shared/peers}
OUT=build/bench
mkdir -p "$OUT"
results="$OUT/results.jsonl"
: > "$results"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)" >&2

if [ -f "$PEERS/limit/limit_sqlite.c" ]; then
  gcc -O2 -o "$OUT/limit_sqlite" "$PEERS/limit/limit_sqlite.c" -lsqlite3
  for sync in NORMAL FULL; do
    echo "LIMIT C, WAL+$sync ..." >&2
    "$OUT/limit_sqlite" "$OUT/limit.db" "$sync" "$N" | sed -n 's/^LIMIT //p' >> "$results"
  done
  rm -f "$OUT"/limit.db*
else
  echo "no $PEERS/limit/limit_sqlite.c: LIMIT baseline skipped" >&2
fi

for sync in NORMAL FULL; do
  echo "voxq W1, WAL+$sync ..." >&2
  build/bin/voxq_bench w1 --db "$OUT/w1.db" --sync "$sync" --n "$N" | sed -n 's/^RESULT //p' >> "$results"
done
echo "voxq W1, WAL+FULL, 16 workers (group commit with more acknowledgements in flight) ..." >&2
build/bin/voxq_bench w1 --db "$OUT/w1.db" --sync FULL --n "$N" --latency-n 100 --workers 16 \
  | sed -n 's/^RESULT //p' >> "$results"
echo "voxq W1 drain with 10x the tasks (memory must not grow) ..." >&2
build/bin/voxq_bench w1 --db "$OUT/w1.db" --sync NORMAL --n $((N * 10)) --latency-n 100 \
  | sed -n 's/^RESULT //p' >> "$results"
echo "voxq stats with $STATS_ROWS tasks stored ..." >&2
build/bin/voxq_bench stats --db "$OUT/stats.db" --rows "$STATS_ROWS" | sed -n 's/^RESULT //p' >> "$results"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
limit = {r["store"].split("+")[-1]: r for r in rows if r.get("system") == "LIMIT C"}
print("| system | store | tasks | enqueue/s | drain/s | p50 ms | p99 ms | drain RSS MB |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    if r.get("system") == "LIMIT C":
        drain = 1 / (1 / r["claim10"] + 1 / r["complete_each_txn"])
        print(f"| LIMIT C (1 thread, claim10 + complete each) | {r['store']} | - | {r['insert_txn100']:,.0f} | {drain:,.0f} | - | - | - |")
    elif r.get("system") == "voxq":
        print(f"| voxq ({r.get('workers', 4)} threads, per-task acks) | {r['store']} | {r['n']:,} | {r['enqueue']:,.0f} | {r['drain']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['drain_rss_mb']:.1f} |")
print()
for r in rows:
    if r.get("system") == "voxq" and r.get("workers") == 4 and r["n"] == min(x["n"] for x in rows if x.get("system") == "voxq"):
        mode = r["store"].split("+")[-1]
        if mode in limit:
            l = limit[mode]
            base = 1 / (1 / l["claim10"] + 1 / l["complete_each_txn"])
            print(f"- WAL+{mode}: enqueue {r['enqueue'] / l['insert_txn100']:.2f}x LIMIT (a); "
                  f"drain {r['drain'] / base:.2f}x LIMIT claim10+complete-each, "
                  f"{r['drain'] / l['complete_txn100']:.2f}x LIMIT complete-in-txns-of-100")
for r in rows:
    if r.get("system") == "voxq stats":
        print(f"- get_queue_stats() with {r['rows']:,} tasks stored ({r['db_mb']:.0f} MB file): "
              f"p50 {r['stats_p50_ms']:.3f} ms, p99 {r['stats_p99_ms']:.3f} ms; "
              f"dequeue(10) + 10 acks: p50 {r['claim10_ack_p50_ms']:.2f} ms")
for r in rows:
    if r.get("verified") is False:
        print(f"- WARNING: {r['store']} n={r['n']} did not verify")
PY
rm -f "$OUT"/w1.db* "$OUT"/stats.db*
