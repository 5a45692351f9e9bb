#!/usr/bin/env bash
# `make run`: a first look at voxq on the embedded SQLite default (data/queue.db).
# Enqueues a few speech tasks with the CLI, claims and settles them through the
# queue's own operations, and shows the state of the queue after each step.
set -euo pipefail
cd "$(dirname "$0")/.."
voxq=build/bin/voxq
export QUEUE_DATABASE_URL=${QUEUE_DATABASE_URL:-sqlite+aiosqlite:///data/queue.db}
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "voxq on $QUEUE_DATABASE_URL"
mkdir -p data
step $voxq migrate
step $voxq enqueue --text "Hello from voxq." --voice espeak.en-us --url http://127.0.0.1:8080/hook
step $voxq enqueue --text "Bonjour." --voice espeak.fr --url http://127.0.0.1:8080/hook --priority 5
printf '%s\n' \
  '{"items":[{"request":{"text":"First of a batch.","voice_id":"kokoro.af_heart"},"response_url":"http://127.0.0.1:8080/hook"}],"queue":"batch"}' \
  '{"items":[{"request":{"text":"Second of a batch.","voice_id":"kokoro.af_heart","format":"mp3"},"response_url":"http://127.0.0.1:8080/hook"}],"queue":"batch"}' \
  > data/demo.jsonl
step $voxq enqueue --file data/demo.jsonl
step $voxq list --limit 10
step $voxq stats
echo
echo "A worker claims tasks with dequeue() and settles each with mark_as_complete /"
echo "mark_as_retry / mark_as_discarded (see README: C++ quick start); the retry sweep:"
step $voxq retry
echo
echo "Inspect one task:   $voxq show <ID>"
echo "Everything else:    $voxq --help"
