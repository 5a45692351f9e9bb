#!/usr/bin/env bash
# Runs each libFuzzer target in BUILD for SECONDS, from the committed seed corpus
# (copied: new inputs stay in BUILD/corpus). Prints executions per target and in
# all; exits non-zero on the first crash.   usage: scripts/fuzz.sh BUILD SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
seconds=$2
total=0
for bin in "$build"/bin/fuzz_*; do
  name=${bin##*/fuzz_}
  work="$build/corpus/$name"
  mkdir -p "$work" "$build/crashes"
  cp -n tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
  log="$build/fuzz_$name.log"
  ASAN_OPTIONS=detect_leaks=0 "$bin" -max_total_time="$seconds" -print_final_stats=1 \
    -rss_limit_mb=4096 -artifact_prefix="$build/crashes/$name-" "$work" > "$log" 2>&1 || {
      echo "fuzz_$name: FAILED (see $log)" >&2; tail -40 "$log" >&2; exit 1; }
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  total=$((total + ${runs:-0}))
  echo "fuzz_$name: ${runs:-0} executions in ${seconds}s, no crash"
done
echo "fuzz: $total executions in all, no crash"
