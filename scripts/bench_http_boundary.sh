#!/usr/bin/env bash
# The HTTP API before and after the move to the bounded server (issue 10), side by
# side in one run: the same wrk settings against `voxq serve` built from this
# tree and from the last commit on cpp-httplib (158846b, built once into
# build/bench-baseline), with the worker pool on and off; then each server's
# peak RSS growth under the heaviest request of the attack suite (a 200 MiB
# chunked body to /inbox, sent with the token).
set -euo pipefail
cd "$(dirname "$0")/.."
baseline_commit=158846b
base=build/bench-baseline
if [ ! -x "$base/build/bin/voxq" ]; then
  echo "building the baseline voxq ($baseline_commit, cpp-httplib) ..." >&2
  rm -rf "$base/src" "$base/build"
  mkdir -p "$base/src"
  git archive "$baseline_commit" | tar -x -C "$base/src"
  cmake -S "$base/src" -B "$base/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DVOXQ_BUILD_TESTS=OFF -DVOXQ_BUILD_BENCH=OFF -DVOXQ_BUILD_PYTHON=OFF > /dev/null
  cmake --build "$base/build" -j "${JOBS:-2}" --target voxq_cli voxq_espeak > /dev/null
fi
for flags in "" "--no-worker"; do
  VOXQ_BENCH_SERVE_FLAGS=$flags VOXQ_BENCH_BINARY="$base/build/bin/voxq" \
    VOXQ_BENCH_LABEL="before: cpp-httplib ($baseline_commit)" scripts/bench_api.sh
  echo
  VOXQ_BENCH_SERVE_FLAGS=$flags VOXQ_BENCH_LABEL="after: Boost.Beast (this tree)" scripts/bench_api.sh
  echo
done
python3 - "$base/build/bin/voxq" build/bin/voxq <<'PY'
import os, socket, subprocess, sys, tempfile, time
TOKEN = "bench-token-0123456789abcdef"
def hwm(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def peak(binary):
    work = tempfile.mkdtemp()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    env = dict(os.environ, QUEUE_DATABASE_URL=f"sqlite:///{work}/q.db", VOXQ_API_TOKEN=TOKEN)
    p = subprocess.Popen([binary, "serve", "--no-worker", "--port", str(port)], env=env,
                         stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
            except OSError:
                time.sleep(0.05)
        before = hwm(p.pid)
        c = socket.create_connection(("127.0.0.1", port), timeout=30)
        c.sendall((f"POST /inbox HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                   "webhook-id: big\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"100000\r\n" + b"a" * 0x100000 + b"\r\n"
        try:
            for _ in range(200):
                c.sendall(chunk)
            c.sendall(b"0\r\n\r\n")
            c.settimeout(10); c.recv(1000)
        except OSError:
            pass
        c.close()
        time.sleep(0.5)
        return hwm(p.pid) - before, p.poll() is None
    finally:
        p.terminate(); p.wait()
print("| 200 MiB chunked body to /inbox (token sent) | peak RSS growth | alive after |")
print("| --- | ---: | --- |")
for label, binary in (("before: cpp-httplib", sys.argv[1]), ("after: Boost.Beast", sys.argv[2])):
    grown, alive = peak(binary)
    print(f"| {label} | {grown:,.0f} MB | {'yes' if alive else 'no'} |")
PY
