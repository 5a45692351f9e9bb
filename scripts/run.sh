#!/usr/bin/env bash
# `make run`: the service on the embedded SQLite default (data/queue.db), and the
# whole path working: a task is submitted over HTTP, the embedded workers
# synthesize it with espeak-ng, and a signed webhook delivers the audio to a local
# receiver (`voxq sink`) that saves it in data/delivered/ for you to play. Then
# the service keeps running for the dashboard until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
voxq=build/bin/voxq
export QUEUE_DATABASE_URL=${QUEUE_DATABASE_URL:-sqlite+aiosqlite:///data/queue.db}
api_port=${VOXQ_PORT:-8080}
sink_port=${VOXQ_SINK_PORT:-8089}
secret=$($voxq secret)   # a new one each run; keep yours in VOXQ_WEBHOOK_SECRET
# The receivers run on this machine, so the workers may deliver to loopback.
export VOXQ_WEBHOOK_SECRET=$secret VOXQ_WEBHOOK_ALLOW_NETS=127.0.0.1/32
api="http://127.0.0.1:$api_port"
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

mkdir -p data
$voxq sink --port "$sink_port" --dir data/delivered --secret "$secret" & pids+=($!)
$voxq serve --port "$api_port" & pids+=($!)
for _ in $(seq 1 50); do curl -fs "$api/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

body='{"items":[{"request":{"text":"Hello from voxq. This audio was queued, synthesized and delivered.","voice_id":"espeak.en-us","format":"mp3"},"response_url":"http://127.0.0.1:'$sink_port'/hook"}]}'
bold "\$ curl -s -X POST $api/v1/tasks -H 'Content-Type: application/json' -d '$body'"
task=$(curl -fsS -X POST "$api/v1/tasks" -H 'Content-Type: application/json' -d "$body")
echo "$task"
id=$(printf '%s' "$task" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 100); do
  state=$(curl -fsS "$api/v1/tasks/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  case $state in COMPLETED|DISCARDED) break ;; esac
  sleep 0.1
done
bold "\$ curl -s $api/v1/tasks/$id   ->   $state"
bold "\$ curl -s $api/v1/stats"
curl -fsS "$api/v1/stats"; echo
bold "Delivered audio, saved by the receiver (play it with any audio player), and its event:"
saved=$(python3 - "$id" <<'PY'
import json, sys
for line in open("data/delivered/deliveries.jsonl"):
    d = json.loads(line)
    if d.get("task_id") == sys.argv[1]:
        print("data/delivered/" + d["file"], "data/delivered/" + d["event"])
PY
)
ls -l $saved
python3 -m json.tool "${saved##* }"
cat <<EOF

  Dashboard:  $api/      (counts, recent and failed tasks, a form whose audio plays)
  Metrics:    $api/metrics
  Submit one: curl -X POST $api/v1/tasks -H 'Content-Type: application/json' \\
                -d '{"items":[{"request":{"text":"Your text here.","voice_id":"espeak.en-us"},"response_url":"http://127.0.0.1:$sink_port/hook"}]}'
              (the audio lands in data/delivered/)

The service keeps running on data/queue.db; Ctrl-C stops it.
EOF
wait "${pids[1]}"
