#!/usr/bin/python3
"""The dashboard in headless Chromium, driven over the DevTools protocol.

Starts `voxq serve` (SQLite file, embedded workers, espeak) and Debian's
chromium, then checks as a user would: the page loads with no console errors,
the counts match /v1/stats, the form submits a task that is synthesized and
delivered and whose audio plays, and the cancel and resume buttons change task
states. Saves a screenshot as a test artifact.

usage: dashboard_test.py --voxq build/bin/voxq --artifacts DIR
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # Debian: python3-websocket

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                  "--window-size=1280,900"]


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise Failure(f"timed out waiting for {what}")


class Page:
    """One page over the DevTools protocol; console errors are collected."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0
        self.errors = []
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.send(method)

    def send(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise Failure(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.event(msg)

    def event(self, msg):
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                        for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append("exception: " + json.dumps(params.get("exceptionDetails"))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append("log: " + params["entry"].get("text", ""))

    def eval(self, expression, await_promise=False):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise Failure(f"{expression!r} threw {result['exceptionDetails']}")
        return result["result"].get("value")

    def pump(self):
        """Reads pending events (console errors) without blocking long."""
        self.ws.settimeout(0.05)
        try:
            while True:
                self.event(json.loads(self.ws.recv()))
        except (websocket.WebSocketTimeoutException, TimeoutError):
            pass
        finally:
            self.ws.settimeout(30)

    def wait(self, what, expression, timeout=30.0):
        def probe():
            self.pump()
            return self.eval(expression)
        return wait_for(what, probe, timeout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--voxq", required=True)
    parser.add_argument("--artifacts", required=True)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    check(chromium is not None, "Debian's chromium is not installed (scripts/install-deps.sh)")
    os.makedirs(args.artifacts, exist_ok=True)

    work = tempfile.mkdtemp(prefix="voxq-dashboard-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, QUEUE_DATABASE_URL=f"sqlite:///{work}/queue.db",
               VOXQ_WEBHOOK_ALLOW_NETS="127.0.0.1/32")
    serve = subprocess.Popen([args.voxq, "serve", "--port", str(port), "--concurrency", "2"],
                             env=env, stderr=open(os.path.join(work, "serve.log"), "w"))
    browser = None
    try:
        wait_for("voxq serve", lambda: _up(base + "/healthz"))
        profile = os.path.join(work, "profile")
        browser = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                    "--remote-debugging-port=0", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(profile, "DevToolsActivePort")
        wait_for("chromium's DevTools port", lambda: os.path.exists(port_file) and
                 open(port_file).read().count("\n") >= 1)
        devtools = int(open(port_file).read().split("\n")[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list").read())
        page_target = next(t for t in targets if t["type"] == "page")
        page = Page(page_target["webSocketDebuggerUrl"])

        # Work for the page to show: a task due later (cancellable) and one for an
        # engine that is not configured (discarded at once, resumable).
        later = http_json(base + "/v1/tasks", "POST", {
            "schedule_at": time.time() + 3600,
            "items": [{"request": {"text": "Later.", "voice_id": "espeak.en-us"},
                       "response_url": base + "/inbox"}]})
        unconfigured = http_json(base + "/v1/tasks", "POST", {
            "items": [{"request": {"text": "Nobody speaks this.", "voice_id": "kokoro.af_heart"},
                       "response_url": base + "/inbox"}]})
        wait_for("the kokoro task to be discarded",
                 lambda: http_json(f"{base}/v1/tasks/{unconfigured['id']}")["state"] == "DISCARDED")

        page.send("Page.navigate", url=base + "/")
        page.wait("the counts", "document.querySelectorAll('#counts .count').length === 7")
        stats = http_json(base + "/v1/stats")
        shown = page.wait("the counts to match /v1/stats", f"""(() => {{
            const shown = {{}};
            for (const d of document.querySelectorAll('#counts .count'))
              shown[d.dataset.state] = Number(d.querySelector('.n').textContent);
            return JSON.stringify(shown) === JSON.stringify({json.dumps({k: stats[k] for k in
                ['pending', 'processing', 'completed', 'retryable', 'cancelled', 'discarded',
                 'total']})}) ? shown : null;
        }})()""")
        check(shown["total"] == 2, f"counts shown: {shown}")
        page.wait("the failed task with its error",
                  f"(document.querySelector('#failed tr[data-id=\"{unconfigured['id']}\"] td.err') || {{}})"
                  ".textContent?.includes('VOXQ_ENGINE_KOKORO_URL')")

        # Submit the form: the task is synthesized, delivered to the inbox, and plays.
        page.eval("document.getElementById('text').value = 'Hello from the dashboard test.'")
        page.eval("document.getElementById('format').value = 'mp3'")
        page.eval("document.getElementById('submit-button').click()")
        delivered = page.wait("the submitted task to be delivered",
                              "document.getElementById('result').dataset.delivered", timeout=60)
        task = http_json(f"{base}/v1/tasks/{delivered}")
        check(task["state"] == "COMPLETED", f"submitted task is {task['state']}")
        check(task["items"][0]["request"]["format"] == "mp3", "the form's format was not used")
        page.wait("the audio element to play", """(() => {
            const a = document.getElementById('player');
            return !a.hidden && !a.error && a.duration > 0.5 && a.currentTime > 0;
        })()""", timeout=20)

        # Cancel and resume from the buttons.
        page.wait("the cancel button",
                  f"!!document.querySelector('#recent tr[data-id=\"{later['id']}\"] button[data-action=cancel]')")
        page.eval(f"document.querySelector('#recent tr[data-id=\"{later['id']}\"] "
                  "button[data-action=cancel]').click()")
        wait_for("the cancelled state",
                 lambda: http_json(f"{base}/v1/tasks/{later['id']}")["state"] == "CANCELLED")
        page.eval(f"document.querySelector('#failed tr[data-id=\"{unconfigured['id']}\"] "
                  "button[data-action=resume]').click()")
        # The resumed task runs again (and is discarded again: kokoro is still not set up).
        wait_for("the resumed task's second attempt",
                 lambda: len(http_json(f"{base}/v1/tasks/{unconfigured['id']}")["error_history"]) == 2)
        page.wait("the cancelled task on the page",
                  f"document.querySelector('#recent tr[data-id=\"{later['id']}\"] .state')"
                  "?.textContent === 'CANCELLED'")

        shot = page.send("Page.captureScreenshot", format="png")
        path = os.path.join(args.artifacts, "dashboard.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        page.pump()
        check(not page.errors, "console errors:\n" + "\n".join(page.errors))
        print(f"dashboard: ok (screenshot {path})")
    finally:
        if browser:
            browser.terminate()
            browser.wait(10)
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        shutil.rmtree(work, ignore_errors=True)


def _up(url):
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"dashboard: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
