#!/usr/bin/env bash
# `make bench`: workload W1 (../shared/peers/README.md) on voxq's SQLite store,
# next to the LIMIT C baseline of ../shared/peers measured in the same run, plus
# get_queue_stats() with many tasks stored. Prints a Markdown table.
#
#   BENCH_N=20000            tasks per W1 run
#   BENCH_STATS_ROWS=1000000 tasks stored for the SQLite stats run (10000000 for the 10M figure)
#   BENCH_PG_STATS_ROWS=1000000 the same on PostgreSQL
#   VOXQ_PEERS_DIR=../shared/peers   where the LIMIT C source lives (skipped if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_N:-20000}
STATS_ROWS=${BENCH_STATS_ROWS:-1000000}
PG_STATS_ROWS=${BENCH_PG_STATS_ROWS:-1000000}
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
echo "PostgreSQL (throwaway server, default settings: synchronous_commit=on) ..." >&2
if [ -f "$PEERS/limit/limit_pg.c" ]; then
  gcc -O2 -o "$OUT/limit_pg" "$PEERS/limit/limit_pg.c" -I/usr/include/postgresql -lpq
fi
scripts/with-postgres.sh bash -c '
  set -e
  if [ -x "'"$OUT"'/limit_pg" ]; then
    "'"$OUT"'/limit_pg" "$VOXQ_TEST_PG_URL" "'"$N"'" 2>/dev/null | sed -n "s/^LIMIT //p"
  fi
  for w in 4 16 32; do
    build/bin/voxq_bench w1 --db "$VOXQ_TEST_PG_URL" --n "'"$N"'" --workers "$w" \
      --latency-n "$([ "$w" = 4 ] && echo 1000 || echo 100)" | sed -n "s/^RESULT //p"
  done
  echo "voxq stats on PostgreSQL with '"$PG_STATS_ROWS"' tasks stored ..." >&2
  build/bin/voxq_bench stats --db "$VOXQ_TEST_PG_URL" --rows "'"$PG_STATS_ROWS"'" | sed -n "s/^RESULT //p"
  ' >> "$results"
echo "voxq stats with $STATS_ROWS tasks stored ..." >&2
build/bin/voxq_bench stats --db "$OUT/stats.db" --rows "$STATS_ROWS" | sed -n 's/^RESULT //p' >> "$results"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def mode(r):
    return "PG" if r["store"].startswith("PostgreSQL") else r["store"].split("+")[-1]
def limit_drain(l):
    return 1 / (1 / l["claim10"] + 1 / l["complete_each_txn"])
limit = {mode(r): r for r in rows if r.get("system") == "LIMIT C"}
print("| system | store | tasks | enqueue/s | drain/s | p50 ms | p99 ms | drain RSS MB |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    if r.get("system") == "LIMIT C":
        enq = r["insert_txn100"]
        if "insert_txn100_pipelined" in r:
            enq_text = f"{enq:,.0f} (pipelined {r['insert_txn100_pipelined']:,.0f})"
        else:
            enq_text = f"{enq:,.0f}"
        print(f"| LIMIT C (1 thread, claim10 + complete each) | {r['store']} | - | {enq_text} | {limit_drain(r):,.0f} | - | - | - |")
    elif r.get("system") == "voxq":
        print(f"| voxq ({r.get('workers', 4)} threads, per-task acks) | {r['store']} | {r['n']:,} | {r['enqueue']:,.0f} | {r['drain']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['drain_rss_mb']:.1f} |")
print()
for r in rows:
    if r.get("system") == "voxq" and r.get("workers") == 4 and r["n"] == min(x["n"] for x in rows if x.get("system") == "voxq"):
        m = mode(r)
        if m in limit:
            l = limit[m]
            enq_base = l.get("insert_txn100_pipelined", l["insert_txn100"])
            print(f"- {r['store']}: enqueue {r['enqueue'] / enq_base:.2f}x LIMIT (a{' pipelined' if m == 'PG' else ''}); "
                  f"drain {r['drain'] / limit_drain(l):.2f}x LIMIT claim10+complete-each")
for r in rows:
    if r.get("system") == "voxq stats":
        where = "PostgreSQL" if r['db_mb'] == 0 else f"SQLite, {r['db_mb']:.0f} MB file"
        print(f"- get_queue_stats() with {r['rows']:,} tasks stored ({where}): "
              f"p50 {r['stats_p50_ms']:.3f} ms, p99 {r['stats_p99_ms']:.3f} ms; "
              f"dequeue(10) + 10 acks: p50 {r['claim10_ack_p50_ms']:.2f} ms")
for r in rows:
    if r.get("verified") is False:
        print(f"- WARNING: {r['store']} n={r['n']} did not verify")
PY
rm -f "$OUT"/w1.db* "$OUT"/stats.db*

# The speech workload (issue 4): espeak items through voxq workers to voxq sink,
# next to espeak alone.
echo
python3 scripts/bench_speech.py

# What voxq sink costs per delivery (issue 16): 1,000 signed JSON deliveries of a
# 440 KB WAV item, as the worker sends them, from 4 clients.
echo
python3 scripts/bench_sink.py | sed -n 's/^RESULT //p'

# The HTTP API under wrk (issue 5): with the worker pool on, then API only, each
# before (cpp-httplib) and after (Boost.Beast) the bounded server (issue 10).
echo
scripts/bench_http_boundary.sh

# W1 from Python (issue 6): the guide's API and worker loop on the C++ core, next
# to the C++ figure measured again in the same moment.
echo
echo "W1 from Python (asyncio, 4 guide worker loops) and from C++, SQLite WAL+NORMAL ..." >&2
py=$(PYTHONPATH=build/python /usr/bin/python3 bench/w1_python.py --db "$OUT/w1py.db" --sync NORMAL --n "$N" | sed -n 's/^RESULT //p')
cpp=$(build/bin/voxq_bench w1 --db "$OUT/w1.db" --sync NORMAL --n "$N" --latency-n 100 | sed -n 's/^RESULT //p')
python3 - "$py" "$cpp" <<'PY'
import json, sys
py, cpp = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| W1, SQLite WAL+NORMAL, 4 workers | enqueue/s | drain/s |")
print("| --- | ---: | ---: |")
print(f"| C++ (voxq_bench w1) | {cpp['enqueue']:,.0f} | {cpp['drain']:,.0f} |")
print(f"| Python (asyncio, the guide's loop) | {py['enqueue']:,.0f} | {py['drain']:,.0f} |")
print(f"| Python / C++ | {py['enqueue'] / cpp['enqueue']:.2f}x | {py['drain'] / cpp['drain']:.2f}x |")
if not py["verified"]:
    print("- WARNING: the Python run did not verify")
PY
rm -f "$OUT"/w1py.db* "$OUT"/w1.db*
