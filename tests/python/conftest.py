"""Shared fixtures: a fresh SQLite file per test, and the guide's code blocks."""
import asyncio
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide.md"  # a copy of ../shared/seed, checked in test_guide


@pytest.fixture
def db_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/queue.db"
    monkeypatch.setenv("QUEUE_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    return url


@pytest.fixture
def run():
    """Runs a coroutine to completion on a fresh event loop."""
    def runner(coro, timeout=60):
        return asyncio.run(asyncio.wait_for(coro, timeout))
    return runner


def guide_blocks():
    """Every fenced block of the guide: (heading, language, code)."""
    blocks = []
    heading, language, code = "", None, []
    for line in GUIDE.read_text().splitlines(keepends=True):
        if language is None and line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            if language is None:
                language, code = line[3:].strip(), []
            else:
                blocks.append((heading, language, "".join(code)))
                language = None
        elif language is not None:
            code.append(line)
    return blocks
