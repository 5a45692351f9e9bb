#!/usr/bin/env bash
# `cmake --install` into a temporary prefix (and once more under DESTDIR), then
# the README's C++ quick start built against the installed voxq twice: by a
# CMake project with find_package(voxq), and by g++ with `pkg-config --static
# voxq`. Both run against a SQLite file. The installed `voxq` synthesizes with
# the installed espeak helper, and the installed Python modules import from
# outside the tree.
#
# usage: tests/package/install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/voxq-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step() { printf '== %s\n' "$*"; }

step "cmake --install --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/voxq libexec/voxq/voxq-espeak lib/libvoxq.a include/voxq/queue.hpp \
         lib/cmake/voxq/voxqConfig.cmake lib/pkgconfig/voxq.pc; do
  [ -e "$prefix/$f" ] || { echo "missing after install: $f" >&2; exit 1; }
done

step "DESTDIR is honoured: everything lands under it"
DESTDIR=$work/stage cmake --install "$build" --prefix /opt/voxq-test >/dev/null
[ ! -e /opt/voxq-test ] || { echo "/opt/voxq-test was written outside DESTDIR" >&2; exit 1; }
for f in bin/voxq lib/libvoxq.a lib/pkgconfig/voxq.pc; do
  [ -e "$work/stage/opt/voxq-test/$f" ] || { echo "missing under DESTDIR: $f" >&2; exit 1; }
done
if [ -d "$build/python" ] && ! find "$work/stage" -name '_voxq*.so' | grep -q .; then
  echo "the Python modules ignored DESTDIR or --prefix" >&2; exit 1
fi

run_quick_start() {
  local program=$1
  local db=$work/quick-$RANDOM.db
  local out
  out=$(QUEUE_DATABASE_URL="sqlite:///$db" "$program")
  echo "$out"
  grep -q "completed: 1" <<<"$out" || { echo "the quick start did not complete its task" >&2; exit 1; }
}

step "find_package(voxq) in a project of its own"
cmake -S "$src/tests/package/consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DQUICK_START="$src/examples/quick_start.cpp" >/dev/null
cmake --build "$work/consumer" >/dev/null
run_quick_start "$work/consumer/quick_start"

step "g++ with pkg-config --static voxq"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# shellcheck disable=SC2046
g++ -std=c++20 -o "$work/quick_start_pc" "$src/examples/quick_start.cpp" \
  $(pkg-config --cflags --libs --static voxq)
run_quick_start "$work/quick_start_pc"

step "the installed voxq finds the installed espeak helper"
env -u VOXQ_ESPEAK_HELPER "$prefix/bin/voxq" say --voice espeak.en --text "Installed." \
  -o "$work/installed.wav" 2>/dev/null
[ "$(head -c 4 "$work/installed.wav")" = RIFF ] || { echo "no WAV from the installed voxq" >&2; exit 1; }

if [ -d "$build/python" ]; then
  step "the installed Python modules, from outside the tree"
  site=$(find "$prefix/lib" -maxdepth 3 -name '_voxq*.so' -printf '%h\n' | head -1)
  [ -n "$site" ] || { echo "the Python modules were not installed under the prefix" >&2; exit 1; }
  (cd "$work" && env -u PYTHONPATH PYTHONPATH="$site" QUEUE_DATABASE_URL="sqlite:///$work/py.db" \
    /usr/bin/python3 -c '
import asyncio
from worker import WorkerQueue
from tts import synthesize, TextToSpeechRequest
speech = asyncio.run(synthesize(TextToSpeechRequest("Installed.", "espeak.en")))
assert len(speech.audio) > 1000, speech
print("python: imported from", __import__("worker").__file__, "and synthesized", len(speech.audio), "bytes")
')
fi
echo "install test: ok"
