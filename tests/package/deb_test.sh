#!/usr/bin/env bash
# The Debian package as an operator meets it: lintian, then `apt install
# ./voxq_*.deb` in a fresh Debian 12 root made with debootstrap (every dependency
# resolved from Debian's mirror), systemd-analyze verify on the installed units
# (with Debian's systemd installed there too). In that root, as
# the voxq user with /etc/voxq/voxq.env: `voxq serve --no-worker`, `voxq worker`
# and `voxq sink` run; a task posted over HTTP is synthesized and delivered to
# the sink; the Python modules import for Debian's python3.
#
# usage: tests/package/deb_test.sh BUILD_DEB_DIR   (as root; needs the network)
# VOXQ_DEBOOTSTRAP_CACHE=DIR: a pristine root to copy instead of bootstrapping.
set -euo pipefail
build=$(cd "$1" && pwd)
deb=$(ls "$build"/voxq_*.deb | head -1)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/voxq-deb.XXXXXX)
root=$work/root
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  mountpoint -q "$root/proc" && umount "$root/proc"
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '== %s\n' "$*"; }

step "lintian $(basename "$deb")"
lintian --fail-on error "$deb"

step "a fresh Debian 12 root"
if [ -n "${VOXQ_DEBOOTSTRAP_CACHE:-}" ] && [ -d "$VOXQ_DEBOOTSTRAP_CACHE" ]; then
  cp -a "$VOXQ_DEBOOTSTRAP_CACHE" "$root"
else
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
fi
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

step "apt install ./$(basename "$deb")"
in_root apt-get update -q >/dev/null
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "/tmp/$(basename "$deb")" >"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; exit 1; }
in_root getent passwd voxq >/dev/null || { echo "no voxq user" >&2; exit 1; }
mode=$(in_root stat -c '%U:%G %a' /etc/voxq/voxq.env)
[ "$mode" = "root:voxq 640" ] || { echo "voxq.env: $mode, not root:voxq 640" >&2; exit 1; }
grep -q '^QUEUE_DATABASE_URL=sqlite:////var/lib/voxq/queue.db$' "$root/etc/voxq/voxq.env"

step "systemd-analyze verify on the installed units"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd \
  >"$work/apt-systemd.log" 2>&1 || { tail -30 "$work/apt-systemd.log"; exit 1; }
for unit in voxq-serve.service voxq-worker@1.service; do
  in_root systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 || true
  cat "$work/verify.log"
  if [ -s "$work/verify.log" ]; then
    echo "systemd-analyze verify complained about $unit" >&2; exit 1
  fi
done

step "as the voxq user with /etc/voxq/voxq.env: serve, worker, sink"
secret=$(in_root /usr/bin/voxq secret)
api_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sink_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# What an operator adds to the file for a receiver on this machine.
cat >>"$root/etc/voxq/voxq.env" <<ENV
VOXQ_WEBHOOK_SECRET=$secret
VOXQ_WEBHOOK_ALLOW_NETS=127.0.0.1/32
VOXQ_SINK_SECRET=$secret
VOXQ_LOG_FORMAT=json
ENV
# StateDirectory=voxq would make this; systemd does not run in the root.
install -d -o "$(in_root id -u voxq)" -g "$(in_root id -g voxq)" -m 0750 "$root/var/lib/voxq"
as_voxq() {
  # EnvironmentFile= semantics for this file's plain NAME=value lines.
  # exec: the background job's pid is the voxq process itself, for cleanup's kill.
  # A clean environment with the user's HOME, as systemd gives a User= service.
  exec chroot --userspec=voxq:voxq "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/var/lib/voxq \
    /bin/sh -c 'cd /var/lib/voxq && set -a && . /etc/voxq/voxq.env && set +a && exec "$@"' sh "$@"
}
as_voxq /usr/bin/voxq serve --no-worker --port "$api_port" 2>"$work/serve.log" & pids+=($!)
as_voxq /usr/bin/voxq worker --concurrency 2 2>"$work/worker.log" & pids+=($!)
as_voxq /usr/bin/voxq sink --port "$sink_port" --dir /var/lib/voxq/inbox 2>"$work/sink.log" & pids+=($!)
python3 - "$api_port" "$sink_port" "$root/var/lib/voxq/inbox" <<'PY'
import json, os, sys, time, urllib.request
api, sink, inbox = sys.argv[1], sys.argv[2], sys.argv[3]
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{api}/healthz", timeout=2).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("voxq serve did not come up")
        time.sleep(0.2)
body = json.dumps({"items": [{"request": {"text": "Installed from a Debian package.",
                                          "voice_id": "espeak.en-us", "format": "mp3"},
                              "response_url": f"http://127.0.0.1:{sink}/hook"}]}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{api}/v1/tasks", data=body, method="POST",
                             headers={"Content-Type": "application/json"})
task = json.load(urllib.request.urlopen(req, timeout=10))["id"]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{api}/v1/tasks/{task}", timeout=5))["state"]
    if state in ("COMPLETED", "DISCARDED"):
        break
    time.sleep(0.2)
print("task", task, state)
assert state == "COMPLETED", state
index = os.path.join(inbox, "deliveries.jsonl")
lines = [json.loads(l) for l in open(index)]
assert any(l["task_id"] == task and l["verified"] for l in lines), lines
mp3 = [l["file"] for l in lines if l["task_id"] == task][0]
size = os.path.getsize(os.path.join(inbox, mp3))
assert size > 1000, size
print("delivered and verified:", mp3, size, "bytes")
PY
for log in serve worker; do
  python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$work/$log.log" \
    || { echo "$log.log is not JSON lines:"; cat "$work/$log.log"; exit 1; }
done

step "the Python modules for Debian's python3"
chroot --userspec=voxq:voxq "$root" /bin/sh -c \
  'cd /tmp && QUEUE_DATABASE_URL=sqlite:////tmp/py.db python3 -c "
from worker import WorkerQueue
import asyncio, tts
s = asyncio.run(tts.synthesize(tts.TextToSpeechRequest(\"Python.\", \"espeak.en\")))
print(\"python3: worker imported; synthesized\", len(s.audio), \"bytes\")"'
echo "deb test: ok"
