"""Helpers of the interop tests: Node programs on loopback, secrets, a worker run."""
import base64
import json
import os
import secrets
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def new_secret():
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def start_node(script, args, env):
    """Starts tests/interop/<script>; returns the process and the port it listens on."""
    proc = subprocess.Popen(["node", os.path.join(HERE, script), *args], env=env,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening "), line
    return proc, int(line.split()[1])


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def enqueue(voxq, env, work, tasks, name="tasks.jsonl"):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        for t in tasks:
            f.write(json.dumps(t) + "\n")
    subprocess.run([voxq, "enqueue", "--file", path], env=env, check=True, capture_output=True)


def stats(voxq, env):
    return json.loads(subprocess.run([voxq, "stats", "--json"], env=env, check=True,
                                     capture_output=True, text=True).stdout)


def drain(voxq, env, finished, timeout=120):
    """Runs `voxq worker` until `finished` tasks are COMPLETED or DISCARDED; returns
    the final stats and the worker's output."""
    worker = subprocess.Popen([voxq, "worker", "--concurrency", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = stats(voxq, env)
            if s["completed"] + s["discarded"] >= finished:
                break
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        log = worker.communicate(timeout=60)[0]
    return s, log
