"""What voxq tells its operator (SPEC §5, §13): real `voxq serve` and `voxq worker`
processes at VOXQ_LOG_LEVEL=debug, a webhook receiver on 127.0.0.1 that fails
every delivery, and every secret the processes were given set to a known value.

- every stderr line is one JSON object with ts, level and msg (VOXQ_LOG_FORMAT=json);
- the failed delivery is a warning that names the task id and the attempt;
- no secret (API token, webhook secret, PostgreSQL password, engine API key, S3
  secret key) appears in any line;
- a bad VOXQ_LOG_LEVEL or VOXQ_LOG_FORMAT stops the command with a message naming it.

usage: python3 -m pytest tests/server/logs_test.py --voxq build/bin/voxq
"""
import http.server
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

TOKEN = "log-token-4f9a1c2e7b3d5a60"
SECRET = "whsec_TG9nU2VjcmV0Rm9yVGhlTG9nVGVzdDAxMjM0NQ=="
SECRET_BODY = SECRET[len("whsec_"):]
PG_PASSWORD = "pg-pass-83e1b0c6d2"
API_KEY = "sk-engine-key-61d0c4b2a9"
S3_SECRET = "s3-secret-0b7e2f94c1"
SECRETS = [TOKEN, SECRET, SECRET_BODY, PG_PASSWORD, API_KEY, S3_SECRET]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FailingReceiver:
    """Answers every delivery 503, with a Retry-After the worker must honour."""

    def __init__(self):
        self.hits = 0

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.hits += 1
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def voxq(request):
    return request.config.getoption("--voxq")


@pytest.fixture
def receiver():
    r = FailingReceiver()
    yield r
    r.close()


def database_url(work):
    """PostgreSQL with a password in the URL when the suite has a server (trust
    auth ignores it), else a SQLite file."""
    pg = os.environ.get("VOXQ_TEST_PG_URL")
    if pg:
        return pg.replace("postgresql://postgres@", f"postgresql://postgres:{PG_PASSWORD}@")
    return f"sqlite:///{work}/q.db"


def environment(work, **extra):
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("VOXQ_", "QUEUE_", "AWS_")) and name != "VOXQ_TEST_PG_URL":
            del env[name]
    env.update({
        "QUEUE_DATABASE_URL": database_url(work),
        "VOXQ_PG_SCHEMA": "logs_" + os.path.basename(work).replace("-", "_").lower()[-20:],
        "VOXQ_LOG_LEVEL": "debug",
        "VOXQ_LOG_FORMAT": "json",
        "VOXQ_API_TOKEN": TOKEN,
        "VOXQ_WEBHOOK_SECRET": SECRET,
        "VOXQ_WEBHOOK_ALLOW_NETS": "127.0.0.1/32",
        "VOXQ_ENGINE_KOKORO_URL": "http://127.0.0.1:9/v1",
        "VOXQ_ENGINE_KOKORO_API_KEY": API_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    })
    env.update(extra)
    return env


def lines_of(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def check_lines(lines):
    """Every line JSON with ts, level, msg; no secret anywhere. Returns the events."""
    events = []
    for line in lines:
        event = json.loads(line)  # raises, naming the line, if it is not JSON
        assert {"ts", "level", "msg"} <= event.keys(), line
        assert event["level"] in ("debug", "info", "warning", "error"), line
        for secret in SECRETS:
            assert secret not in line, f"a secret in the log: {line}"
        events.append(event)
    return events


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def submit(port, receiver_port):
    body = json.dumps({"items": [{"request": {"text": "Logged.", "voice_id": "espeak.en"},
                                  "response_url": f"http://127.0.0.1:{receiver_port}/hook"}]})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/tasks", data=body.encode(),
                                 method="POST", headers={"Content-Type": "application/json",
                                                         "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["id"]


def failed_attempts(events, task_id):
    return [e for e in events if e["level"] == "warning" and e.get("task_id") == task_id
            and isinstance(e.get("attempt"), int)]


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_serve_with_workers_logs_json_failures_and_no_secrets(voxq, receiver):
    with tempfile.TemporaryDirectory(prefix="voxq-logs-") as work:
        log_path = os.path.join(work, "serve.log")
        port = free_port()
        with open(log_path, "w") as log:
            proc = subprocess.Popen([voxq, "serve", "--port", str(port), "--concurrency", "1"],
                                    env=environment(work), stdout=log, stderr=log)
        try:
            wait_for(lambda: any("listening" in l for l in lines_of(log_path)),
                     "the start-up line", 20)
            task_id = submit(port, receiver.port)
            wait_for(lambda: len(failed_attempts(check_lines(lines_of(log_path)), task_id)) >= 1,
                     "a warning naming the task and attempt")
        finally:
            stop(proc)
        events = check_lines(lines_of(log_path))
        start = [e for e in events if e["msg"].startswith("voxq serve")][0]
        assert start["level"] == "info"
        assert start["workers"] == 1
        assert "***" in start["database"] or start["database"].startswith("sqlite")
        warning = failed_attempts(events, task_id)[0]
        assert warning["attempt"] == 1
        assert "503" in warning["error"]
        # debug: the claim of the same attempt came first.
        claims = [e for e in events if e["msg"] == "task claimed" and e.get("task_id") == task_id]
        assert claims and claims[0]["attempt"] == 1 and claims[0]["level"] == "debug"
        assert receiver.hits >= 1


def test_worker_logs_json_failures_and_no_secrets(voxq, receiver):
    with tempfile.TemporaryDirectory(prefix="voxq-logs-") as work:
        env = environment(work)
        # Enqueued with the CLI; the worker process alone delivers it.
        task = {"items": [{"request": {"text": "Worker log.", "voice_id": "espeak.en"},
                           "response_url": f"http://127.0.0.1:{receiver.port}/hook"}]}
        out = subprocess.run([voxq, "enqueue", "--json", "-"], input=json.dumps(task), env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        check_lines(out.stderr.splitlines())
        task_id = json.loads(out.stdout)[0]
        log_path = os.path.join(work, "worker.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([voxq, "worker", "--concurrency", "1", "--grace", "5"],
                                    env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for(lambda: failed_attempts(check_lines(lines_of(log_path)), task_id),
                     "a warning naming the task and attempt")
        finally:
            stop(proc)
        events = check_lines(lines_of(log_path))
        assert failed_attempts(events, task_id)[0]["attempt"] == 1
        summary = [e for e in events if e["msg"] == "voxq worker: stopped"]
        assert summary and summary[0]["retried"] >= 1 and summary[0]["completed"] == 0


@pytest.mark.parametrize("variable,value", [("VOXQ_LOG_LEVEL", "loud"),
                                            ("VOXQ_LOG_FORMAT", "xml")])
def test_a_bad_log_setting_is_refused_by_name(voxq, variable, value):
    with tempfile.TemporaryDirectory(prefix="voxq-logs-") as work:
        out = subprocess.run([voxq, "stats"], env=environment(work, **{variable: value}),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1
        assert variable in out.stderr and value in out.stderr, out.stderr
