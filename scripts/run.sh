#!/usr/bin/env bash
# `make run`: the whole path on the embedded SQLite default (data/queue.db):
# submit tasks, a worker synthesizes them with espeak-ng, and signed webhooks
# deliver the audio to a local receiver (`voxq sink`), which saves it in
# data/delivered/ for you to play.
set -euo pipefail
cd "$(dirname "$0")/.."
voxq=build/bin/voxq
export QUEUE_DATABASE_URL=${QUEUE_DATABASE_URL:-sqlite+aiosqlite:///data/queue.db}
port=${VOXQ_DEMO_PORT:-8089}
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw   # a demo secret: use your own in production
# The receiver runs on this machine, so the worker may deliver to loopback.
export VOXQ_WEBHOOK_SECRET=$secret VOXQ_WEBHOOK_ALLOW_NETS=127.0.0.1/32
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

mkdir -p data
echo "voxq on $QUEUE_DATABASE_URL"
$voxq sink --port "$port" --dir data/delivered --secret "$secret" & pids+=($!)
$voxq worker --concurrency 2 & pids+=($!)
sleep 0.5
url="http://127.0.0.1:$port/hook"
step $voxq enqueue --text "Hello from voxq. This audio was queued, synthesized and delivered." \
  --voice espeak.en-us --url "$url"
step $voxq enqueue --text "Bonjour, ceci est une file d'attente durable." --voice espeak.fr \
  --url "$url" --priority 5
step $voxq enqueue --text "This one asks for an engine that is not configured." \
  --voice kokoro.af_heart --url "$url"
for _ in $(seq 1 100); do
  pending=$($voxq stats --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["pending"]+s["processing"])')
  [ "$pending" = 0 ] && break
  sleep 0.1
done
step $voxq stats
step $voxq list --limit 5
echo
echo "Delivered audio (play it with e.g. 'aplay' or any audio player):"
ls -l data/delivered/*.wav
echo
echo "The kokoro task was discarded with a message saying what to configure:"
echo "  $voxq list --state DISCARDED      then   $voxq show <ID>   and   $voxq resume <ID>"
