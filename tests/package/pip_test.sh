#!/usr/bin/env bash
# `pip install --no-build-isolation .` into a fresh virtualenv of Debian's
# python3 (offline: --no-index), then the guide's Quick Start run as written
# from a directory outside the tree, `pip show`, the `voxq` command in the
# venv's bin/, and `pip uninstall` leaving nothing importable.
#
# usage: tests/package/pip_test.sh BUILD_DIR   (reused by the in-tree backend)
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/voxq-pip.XXXXXX)
trap 'rm -rf "$work"' EXIT
step() { printf '== %s\n' "$*"; }

step "a virtualenv, and pip install --no-build-isolation ."
/usr/bin/python3 -m venv "$work/venv"
py=$work/venv/bin/python
(cd "$work" && VOXQ_BUILD_DIR=$build "$py" -m pip install -q --no-index --no-build-isolation "$src")

step "pip show voxq"
"$py" -m pip show voxq | tee "$work/show"
grep -q "^Version: $(sed -n 's/^project(voxq VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")$" "$work/show"

step "the guide's Quick Start, as written, from outside the tree"
mkdir -p "$work/app"
{
  echo 'async def process_tts_task(task):  # the guide leaves this to the reader'
  echo '    return True'
  awk '/^## Quick Start/{q=1} q&&/^```python/{c=1;next} c&&/^```/{exit} c' "$src/docs/guide.md"
} > "$work/app/quick_start.py"
out=$(cd "$work/app" && env -u PYTHONPATH -u QUEUE_DATABASE_URL "$py" quick_start.py)
echo "$out"
grep -q "Processed 0 retry tasks" <<<"$out"
[ -f "$work/app/data/queue.db" ] || { echo "no SQLite file in data/ (the guide's default)" >&2; exit 1; }

step "synthesis with the wheel's espeak helper, and the voxq command"
(cd "$work/app" && env -u PYTHONPATH -u VOXQ_ESPEAK_HELPER "$py" -c '
import asyncio
from tts import synthesize, TextToSpeechRequest
speech = asyncio.run(synthesize(TextToSpeechRequest("From a virtualenv.", "espeak.en")))
assert len(speech.audio) > 1000
print("synthesized", len(speech.audio), "bytes of", speech.content_type)')
env -u VOXQ_ESPEAK_HELPER "$work/venv/bin/voxq" say --voice espeak.en --text "Venv." -o "$work/venv.wav"

step "pip uninstall voxq"
"$py" -m pip uninstall -y -q voxq
if (cd "$work/app" && env -u PYTHONPATH "$py" -c 'import worker' 2>/dev/null); then
  echo "worker is still importable after pip uninstall" >&2; exit 1
fi
[ ! -e "$work/venv/bin/voxq" ] || { echo "bin/voxq left behind by pip uninstall" >&2; exit 1; }
echo "pip test: ok"
