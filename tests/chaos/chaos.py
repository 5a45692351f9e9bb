#!/usr/bin/env python3
"""The crash and fault campaign (SPEC §14): real producers, real `voxq worker`
processes synthesizing with espeak-ng and delivering to a receiver on
127.0.0.1, killed and starved at random moments; after every trial the
invariants are checked from the store, the workers' logs and the receiver's.

Fault kinds:
  kill        SIGKILL of a producer, a worker, all workers, or a `voxq retry`
              sweep, at a random moment (SQLite FULL and NORMAL, PostgreSQL)
  vfs         a fault below SQLite from tests/chaos/fault_vfs.c (I/O error,
              full disk, failed fsync, lying fsync, short write) at the N-th
              operation, then a simulated power cut that undoes every write
              not yet synced; one process (producer and built-in worker)
  fullfs      a real full filesystem (a small tmpfs), then space freed
  pg-server   the PostgreSQL server SIGKILLed (postmaster) or stopped with
              `pg_ctl stop -m immediate` during a drain, then restarted
  pg-proxy    the connections between workers and PostgreSQL cut, cut right
              after a COMMIT or a claim went through (the answer never comes
              back), delayed, or black-holed, by a TCP proxy on loopback

Invariants (violations must be 0):
  acked-present      every enqueue a producer was told succeeded is stored
  claim-once         no (task, attempt) was claimed by two workers
  complete-once      no task was completed twice
  items-delivered    every item of a COMPLETED task reached the receiver
  redelivery         an item delivered twice was delivered by two attempts
  store-check        `voxq check` is clean (integrity, counters, state rules)
  drained            at the end of a run every acknowledged task finished
Only where the disk lied (lying fsync) or synchronous=NORMAL met a power cut
may acknowledged writes be lost: those are counted apart, as expected.

Usage: chaos.py --voxq BIN --fault-vfs SO [--scale short|full] [--out DIR]
Prints the table; writes DIR/chaos.log (every trial) and DIR/table.md.
"""
import argparse
import collections
import http.server
import json
import os
import pathlib
import random
import select
import shutil
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]

SCALES = {
    # trials per (store, fault kind); "full" is what docs/reliability.md reports
    "full": {"sqlite-full-kill": 600, "sqlite-normal-kill": 400, "vfs": 300, "fullfs": 20,
             "pg-kill": 150, "pg-server": 30, "pg-proxy": 60},
    "short": {"sqlite-full-kill": 30, "sqlite-normal-kill": 20, "vfs": 20, "fullfs": 2,
              "pg-kill": 15, "pg-server": 4, "pg-proxy": 8},
}
TRIALS_PER_RUN = 50  # trials on one database before it is drained and replaced
VFS_KINDS = ["eio", "full", "fsync", "short", "lying-fsync"]
PROXY_MODES = ["cut", "cut-after-commit", "cut-after-claim", "cut-after-ack", "delay",
               "blackhole"]
INVARIANTS = ["acked-present", "claim-once", "complete-once", "items-delivered", "redelivery",
              "store-check", "drained"]


def log(out, line):
    out.write(line + "\n")
    out.flush()


# ---------------------------------------------------------------- the receiver

class Receiver:
    """Records every delivery (task, item, attempt, status); answers 500 to a
    few, so retries happen too."""

    def __init__(self, fail_rate=0.03):
        self.lock = threading.Lock()
        self.deliveries = []  # (task_id, item, attempt, status)
        rng = random.Random(1)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                task = self.headers.get("voxq-task-id", "")
                item = int(self.headers.get("voxq-item", "-1"))
                attempt = int(self.headers.get("voxq-attempt", "-1"))
                with receiver.lock:
                    status = 500 if rng.random() < fail_rate else 200
                    receiver.deliveries.append((task, item, attempt, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a worker killed mid-delivery resets its connection: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return list(self.deliveries)

    def clear(self):
        with self.lock:
            self.deliveries.clear()


# ---------------------------------------------------------------- PostgreSQL

class Postgres:
    """A throwaway server of the campaign's own, so it may be killed."""

    def __init__(self, workdir):
        self.bin = pathlib.Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="voxq-chaos-pg.", dir=workdir))
        self.asuser = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if self.asuser:
            shutil.chown(self.dir, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        subprocess.run(self.asuser + [str(self.bin / "initdb"), "-D", str(self.dir / "data"),
                                      "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                      "--no-locale"], check=True, capture_output=True)
        with open(self.dir / "data" / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args, check=True):
        return subprocess.run(self.asuser + [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"),
                                             "-l", str(self.dir / "server.log")] + list(args),
                              check=check, capture_output=True, timeout=120)

    def start(self):
        # After a SIGKILLed postmaster its backends take a moment to notice.
        for _ in range(60):
            if self.pg_ctl("-w", "-t", "60", "start", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("PostgreSQL would not start again: " +
                           (self.dir / "server.log").read_text()[-2000:])

    def kill_postmaster(self):
        pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def stop_immediate(self):
        self.pg_ctl("-m", "immediate", "-w", "stop", check=False)

    def psql(self, sql):
        out = subprocess.run(["psql", "-X", "-At", "-F", "|", self.url, "-c", sql],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("psql: " + out.stderr.strip())
        return [line.split("|") for line in out.stdout.splitlines() if line]

    def close(self):
        self.pg_ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """A TCP proxy on loopback between workers and PostgreSQL, with faults."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []
        self.mode = "pass"
        self.armed = None  # (bytes, ...): cut right after a message holding one went through
        self.dead = set()  # black-holed connections: open, silent, forever
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client, server):
        peer = {client: server, server: client}
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], 0.2)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    while (client, server) in self.dead:
                        time.sleep(0.05)  # nothing goes through, either way
                    if self.mode == "delay":
                        time.sleep(random.uniform(0.02, 0.2))
                    peer[s].sendall(data)
                    armed = self.armed
                    if s is client and armed is not None and any(m in data for m in armed):
                        self.armed = None
                        with self.lock:
                            self.cuts += 1
                        raise OSError("cut after the statement went through")
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self.lock:
                if (client, server) in self.pairs:
                    self.pairs.remove((client, server))

    def blackhole(self):
        """Every connection open now goes silent and stays open: a peer gone
        without a word (a partition, a host powered off). New ones work."""
        with self.lock:
            self.dead.update(self.pairs)
            self.cuts += len(self.pairs)

    def cut_all(self):
        with self.lock:  # not the black-holed: those stay silent
            pairs = [p for p in self.pairs if p not in self.dead]
            self.cuts += len(pairs)
        for client, server in pairs:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ---------------------------------------------------------------- a cluster

class Cluster:
    """Producers, workers and sweeps on one database, restarted as they die."""

    def __init__(self, args, store_url, receiver, workdir, env_extra=None, workers=2,
                 producers=2, check_url=None):
        self.args = args
        self.url = store_url
        self.check_url = check_url or store_url
        self.receiver = receiver
        self.dir = pathlib.Path(workdir)
        self.env = dict(os.environ)
        self.env.update({
            "QUEUE_DATABASE_URL": store_url,
            "QUEUE_VISIBILITY_TIMEOUT": "2",
            "QUEUE_RETRY_BASE_DELAY": "0.05",
            "QUEUE_MAX_RETRY_DELAY": "0.5",
            "QUEUE_MAX_ATTEMPTS": "30",
            "VOXQ_MAX_STALLS": "30",
            "VOXQ_WEBHOOK_PAYLOAD": "raw",
            "VOXQ_WEBHOOK_ALLOW_NETS": "127.0.0.0/8",
            "VOXQ_WEBHOOK_SECRET": "whsec_Y2hhb3MtY2FtcGFpZ24tc2VjcmV0LWtleQ==",
            "VOXQ_ESPEAK_HELPER": str(pathlib.Path(args.voxq).parent / "voxq-espeak"),
            "VOXQ_LOG_LEVEL": "debug",
            "VOXQ_LOG_FORMAT": "json",
            # Past it a black-holed connection is given up (the default is 60 s).
            "VOXQ_PG_QUERY_TIMEOUT": os.environ.get("CHAOS_PG_QUERY_TIMEOUT", "3"),
            "PYTHONPATH": f"{args.python_path}:{ROOT / 'python'}",
        })
        self.env.update(env_extra or {})
        self.n_workers = workers
        self.n_producers = producers
        self.workers = []
        self.producers = []
        self.serial = 0
        self.acked = {}  # task id -> items
        self.claims = collections.Counter()  # (task, attempt) -> times claimed
        self.first_item = {}  # (task, attempt) -> the item the attempt started at
        self.completions = collections.Counter()
        self.log_offsets = {}
        self.errors = collections.Counter()

    def _spawn(self, argv, name, extra_env=None):
        self.serial += 1
        path = self.dir / f"{name}-{self.serial}.log"
        env = dict(self.env)
        env.update(extra_env or {})
        f = open(path, "wb")
        p = subprocess.Popen(argv, stdout=f if name != "producer" else subprocess.PIPE,
                             stderr=f, env=env, cwd=self.dir)
        f.close()
        p.log_path = path
        return p

    def start_worker(self):
        p = self._spawn([self.args.voxq, "worker", "--concurrency", "2", "--grace", "5"], "worker")
        self.workers.append(p)
        self.log_offsets[p.log_path] = 0

    def start_producer(self, extra=None, work=0, extra_env=None):
        argv = [sys.executable, str(HERE / "node.py"), "--url", self.receiver.url]
        if work:
            argv += ["--work", str(work)]
        p = self._spawn(argv + (extra or []), "producer", extra_env)
        p.buffer = b""
        os.set_blocking(p.stdout.fileno(), False)
        self.producers.append(p)
        if work:
            self.log_offsets[p.log_path] = 0
        return p

    def fill(self):
        self.workers = [w for w in self.workers if w.poll() is None]
        self.producers = [p for p in self.producers if p.poll() is None or self._read_acks(p)]
        while len(self.workers) < self.n_workers:
            self.start_worker()
        while len([p for p in self.producers if p.poll() is None]) < self.n_producers:
            self.start_producer()

    def _read_acks(self, p):
        """Reads what the producer printed; False once it is dead and read out."""
        try:
            chunk = os.read(p.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            chunk = None
        if chunk:
            p.buffer += chunk
            *lines, p.buffer = p.buffer.split(b"\n")
            for line in lines:
                parts = line.decode().split()
                if parts and parts[0] == "ack":
                    self.acked[parts[1]] = int(parts[2])
                elif parts and parts[0] == "error":
                    self.errors[parts[1]] += 1
            return True
        return p.poll() is None

    def read_all_acks(self):
        for p in list(self.producers):
            while self._read_acks(p) and p.poll() is not None:
                pass
            self._read_acks(p)

    def read_logs(self):
        """New claim and completion events from every worker's log."""
        for path, offset in list(self.log_offsets.items()):
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line cut by a kill has no newline
            self.log_offsets[path] = offset + end
            for line in data[:end].splitlines():
                if not line.startswith(b"{"):
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("msg") == "task claimed":
                    self.claims[(event["task_id"], event["attempt"])] += 1
                    self.first_item[(event["task_id"], event["attempt"])] = event["from_item"]
                elif event.get("msg") == "task completed":
                    self.completions[event["task_id"]] += 1
                elif "error" in event:
                    self.errors["worker"] += 1

    def kill(self, victims):
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in victims:
            p.wait()

    def sweep(self, kill_after=None):
        p = self._spawn([self.args.voxq, "retry"], "sweep")
        if kill_after is not None:
            time.sleep(kill_after)
            self.kill([p])
        else:
            p.wait(timeout=120)
        return p

    def stop_all(self):
        self.kill(self.workers + [p for p in self.producers if p.poll() is None])
        self.read_all_acks()
        self.read_logs()
        self.workers, self.producers = [], []

    # -------------------------------------------------------- reading the store

    def tasks(self):
        """{id: (state, attempt_count, items_delivered, items)} from the store."""
        if self.check_url.startswith("sqlite:///"):
            path = self.check_url[len("sqlite:///"):]
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'tasks'").fetchall():
                    return {}  # a power cut before the first migration was synced
                rows = db.execute("SELECT id, state, attempt_count, items_delivered, "
                                  "json_array_length(items) FROM tasks").fetchall()
            finally:
                db.close()
            return {r[0]: tuple(r[1:]) for r in rows}
        rows = self.args.postgres.psql(
            f"SELECT id, state, attempt_count, items_delivered, json_array_length(items::json) "
            f"FROM {self.env['VOXQ_PG_SCHEMA']}.tasks")
        return {r[0]: tuple(int(v) for v in r[1:]) for r in rows}

    def store_check(self):
        env = dict(self.env)
        env["QUEUE_DATABASE_URL"] = self.check_url
        out = subprocess.run([self.args.voxq, "check"], env=env, capture_output=True, text=True,
                             timeout=300)
        return out.returncode, (out.stdout + out.stderr).strip()

    def check(self, expect_loss=False, store_check=True):
        """The invariants now: {invariant: [finding, ...]}, the acknowledged
        tasks lost, the tasks. With `expect_loss` (the disk lied, or NORMAL met a
        power cut) lost writes are expected, and so is what follows from them:
        a claim or completion lost and done again; those findings are only
        counted, in the lost list."""
        self.read_all_acks()
        self.read_logs()
        found = collections.defaultdict(list)
        tasks = self.tasks()
        lost = [t for t in self.acked if t not in tasks]
        if not expect_loss:
            found["acked-present"] += [f"acknowledged task {t} is not stored" for t in lost]
        found["claim-once"] += [f"task {t} attempt {a} claimed {n} times"
                                for (t, a), n in self.claims.items() if n > 1]
        found["complete-once"] += [f"task {t} completed {n} times"
                                   for t, n in self.completions.items() if n > 1]
        delivered = collections.defaultdict(list)
        for task, item, attempt, status in self.receiver.snapshot():
            if status == 200:
                delivered[(task, item)].append(attempt)
        for task, (state, attempts, progress, items) in tasks.items():
            if state == 2:  # COMPLETED
                missing = [i for i in range(items) if (task, i) not in delivered]
                if missing:
                    found["items-delivered"].append(f"task {task} COMPLETED, items {missing} "
                                                    "never delivered")
        for (task, item), attempts in delivered.items():
            if len(attempts) != len(set(attempts)):
                found["redelivery"].append(f"task {task} item {item} delivered twice by one "
                                           f"attempt: {sorted(attempts)}")
            # An attempt starts after the items its predecessors recorded as
            # delivered: it never sends those again.
            for attempt in attempts:
                first = self.first_item.get((task, attempt), 0)
                if item < first:
                    found["redelivery"].append(f"task {task} item {item} sent again by attempt "
                                               f"{attempt}, which started at item {first}")
        if store_check:
            rc, text = self.store_check()
            if rc != 0:
                found["store-check"].append(text[:2000])
        if expect_loss:
            for k in ("claim-once", "complete-once", "redelivery"):
                lost += found.pop(k, [])
        return found, lost, tasks

    def summary(self):
        delivered = sum(1 for d in self.receiver.snapshot() if d[3] == 200)
        return (f"acked={len(self.acked)} claims={sum(self.claims.values())} "
                f"completions={sum(self.completions.values())} deliveries={delivered}")

    def drain(self, timeout=90):
        """Producers stopped, workers (restarted) finish everything."""
        for p in self.producers:
            if p.poll() is None:
                self.kill([p])
        self.read_all_acks()
        self.n_producers = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.fill()
            self.sweep()
            tasks = self.tasks()
            open_ = [t for t, v in tasks.items() if v[0] in (0, 1, 3)]
            if not open_:
                return []
            time.sleep(0.5)
        return [f"{len(open_)} task(s) still open after {timeout} s, e.g. {open_[0]}"]


# ---------------------------------------------------------------- trials

class Tally:
    def __init__(self, out, path=None):
        self.out = out
        self.path = path
        self.rows = collections.OrderedDict()  # (store, kind) -> counters
        self.examples = []

    def row(self, store, kind):
        key = (store, kind)
        if key not in self.rows:
            self.rows[key] = {"trials": 0, "faults": 0, "lost_expected": 0, "seconds": 0.0,
                              **{i: 0 for i in INVARIANTS}}
        return self.rows[key]

    def record(self, store, kind, found, faults=1, lost_expected=0, seconds=0.0, note=""):
        self._record(store, kind, found, faults, lost_expected, seconds, note)
        if self.path is not None:  # the table so far, should the run be cut short
            self.path.write_text(self.table()[0] + "\n")

    def _record(self, store, kind, found, faults, lost_expected, seconds, note):
        r = self.row(store, kind)
        r["trials"] += 1
        r["faults"] += faults
        r["lost_expected"] += lost_expected
        r["seconds"] += seconds
        for inv, items in found.items():
            r[inv] += len(items)
            for item in items[:3]:
                self.examples.append(f"{store} {kind}: {inv}: {item}")
        bad = sum(len(v) for v in found.values())
        log(self.out, f"{store:10} {kind:14} trial {r['trials']:4} {note} "
                      f"{'OK' if bad == 0 else 'VIOLATIONS ' + json.dumps(found)[:1500]}")

    def table(self):
        head = ["store", "fault kind", "trials", "faults injected", *INVARIANTS,
                "acked lost where the disk lied", "time (s)"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for (store, kind), r in self.rows.items():
            cells = [store, kind, r["trials"], r["faults"], *[r[i] for i in INVARIANTS],
                     r["lost_expected"], f"{r['seconds']:.0f}"]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        totals = collections.Counter()
        for (store, kind), r in self.rows.items():
            if not kind.endswith("(drain)"):
                totals[store] += r["trials"]
        violations = sum(r[i] for r in self.rows.values() for i in INVARIANTS)
        lines.append("")
        lines.append("Trials: " + ", ".join(f"{s} {n}" for s, n in totals.items()) +
                     f"; invariant violations: {violations}")
        return "\n".join(lines), violations


def kill_trials(args, tally, store, kind, cluster_factory, count, rng):
    """SIGKILL of producers, workers, all workers or a sweep at random moments."""
    done = 0
    while done < count:
        cluster = cluster_factory()
        try:
            for _ in range(min(TRIALS_PER_RUN, count - done)):
                started = time.monotonic()
                cluster.fill()
                time.sleep(rng.uniform(0.05, 0.8))
                victim = rng.choice(["producer", "worker", "worker", "all-workers", "sweep"])
                if victim == "producer":
                    cluster.kill([rng.choice([p for p in cluster.producers if p.poll() is None])])
                elif victim == "worker":
                    cluster.kill([rng.choice(cluster.workers)])
                elif victim == "all-workers":
                    cluster.kill(cluster.workers)
                else:
                    cluster.sweep(kill_after=rng.uniform(0.0, 0.15))
                cluster.sweep()  # what a worker's own sweep would do, sooner
                found, _, _ = cluster.check()
                done += 1
                tally.record(store, kind, found, seconds=time.monotonic() - started,
                             note=f"killed {victim}")
            started = time.monotonic()
            found = {"drained": cluster.drain()}
            more, _, _ = cluster.check()
            for k, v in more.items():
                found.setdefault(k, []).extend(v)
            tally.record(store, kind + " (drain)", found, faults=0,
                         seconds=time.monotonic() - started, note=cluster.summary())
        finally:
            cluster.stop_all()


def self_test(args, receiver, workdir):
    """The checker catches each violation planted on purpose, so a clean table
    means something."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="selftest.", dir=workdir))
    cluster = Cluster(args, f"sqlite:///{d}/queue.db", receiver, d, workers=0, producers=1)
    cluster.fill()
    deadline = time.monotonic() + 30
    while len(cluster.acked) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        cluster.read_all_acks()
    producers = list(cluster.producers)
    cluster.stop_all()
    if len(cluster.acked) < 3:
        logs = "".join(p.log_path.read_text()[-1500:] for p in producers)
        raise SystemExit(f"self-test: the producer acknowledged nothing; its log:\n{logs}")
    found, _, _ = cluster.check()
    assert not any(found.values()), f"self-test: a clean store has findings: {dict(found)}"
    some = sorted(cluster.acked)[0]
    cluster.acked["01ZZZZZZZZZZZZZZZZZZZZZZZZ"] = 1  # acknowledged, never stored
    cluster.claims[(some, 1)] = 2
    cluster.completions[some] = 2
    receiver.deliveries += [(some, 0, 1, 200), (some, 0, 1, 200), (some, 0, 2, 200)]
    cluster.first_item[(some, 2)] = 1  # attempt 2 started past item 0, yet sent it
    db = sqlite3.connect(f"{d}/queue.db")
    db.execute("UPDATE tasks SET state = 2 WHERE id = ?", (sorted(cluster.acked)[1],))
    db.commit()
    db.close()
    found, _, _ = cluster.check()
    missing = [i for i in INVARIANTS if i != "drained" and not found.get(i)]
    assert not missing, f"self-test: planted violations not found: {missing}"
    assert any("started at item" in f for f in found["redelivery"]), found["redelivery"]
    receiver.clear()
    shutil.rmtree(d, ignore_errors=True)


def vfs_trials(args, tally, count, rng, workdir, receiver):
    """A fault below SQLite at the N-th operation, then a power cut."""
    for n in range(count):
        kind = VFS_KINDS[n % len(VFS_KINDS)]
        sync = "FULL" if n % 10 != 9 else "NORMAL"
        started = time.monotonic()
        tdir = pathlib.Path(tempfile.mkdtemp(prefix="vfs.", dir=workdir))
        url = f"sqlite:///{tdir}/queue.db"
        receiver.clear()
        cluster = Cluster(args, url, receiver, tdir, workers=0, producers=0,
                          env_extra={"VOXQ_SQLITE_SYNCHRONOUS": sync})
        fault_at = rng.randint(20, 400)
        cut_at = fault_at + rng.randint(1, 300)
        p = cluster.start_producer(["--pause", "0.005"], work=2, extra_env={
            "LD_PRELOAD": args.fault_vfs,
            "VOXQ_FAULT_KIND": kind,
            "VOXQ_FAULT_AT": str(fault_at),
            "VOXQ_FAULT_COUNT": str(rng.choice([1, 1, 5, 50]) if kind != "lying-fsync" else 1000),
            "VOXQ_POWER_CUT_AT": str(cut_at),
            "VOXQ_POWER_CUT_MODE": rng.choice(["all", "random"]),
            "VOXQ_FAULT_LOG": str(tdir / "faults.log"),
        })
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cluster.kill([p])  # the power cut never came: a quiet process
        cluster.read_all_acks()
        cluster.read_logs()
        faults = (tdir / "faults.log").read_text().count("\n") if (tdir / "faults.log").exists() else 0
        # Where the disk lied, or NORMAL met the power cut, acknowledged writes may go.
        may_lose = kind == "lying-fsync" or sync == "NORMAL"
        found, lost, tasks = cluster.check(expect_loss=may_lose, store_check=False)
        # Recovery: the queue opens again, takes writes, and drains.
        cluster.n_workers = 2
        found["drained"] = cluster.drain(timeout=60)
        more, lost_later, _ = cluster.check(expect_loss=may_lose)
        lost = set(map(str, lost)) | set(map(str, lost_later))
        for k, v in more.items():
            found.setdefault(k, []).extend(v)
        cluster.stop_all()
        tally.record("sqlite", f"vfs {kind}", found, faults=faults,
                     lost_expected=len(lost) if may_lose else 0,
                     seconds=time.monotonic() - started,
                     note=f"{sync} fault@{fault_at} cut@{cut_at} acked={len(cluster.acked)}")
        shutil.rmtree(tdir, ignore_errors=True)


def fullfs_trials(args, tally, count, rng, workdir, receiver):
    """A small tmpfs filled up while enqueuing and draining, then space freed."""
    for n in range(count):
        started = time.monotonic()
        mnt = pathlib.Path(tempfile.mkdtemp(prefix="fullfs.", dir=workdir))
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                          capture_output=True).returncode != 0:
            log(tally.out, "fullfs: cannot mount a tmpfs here (needs root); skipped")
            return
        try:
            receiver.clear()

            def fill_up(path, leave):
                """Writes `path` until only `leave` bytes are free."""
                with open(path, "wb") as f:
                    try:
                        while shutil.disk_usage(mnt).free > leave:
                            f.write(b"\0" * 65536)
                            f.flush()
                    except OSError:
                        pass

            # Other files took most of the disk; the queue has a little room.
            fill_up(mnt / "ballast-1", rng.randint(1, 3) << 20)
            cluster = Cluster(args, f"sqlite:///{mnt}/queue.db", receiver, workdir,
                              workers=2, producers=2)
            cluster.fill()
            time.sleep(rng.uniform(0.5, 3.0))
            # Then the rest goes: the queue meets ENOSPC mid-write, or was there already.
            fill_up(mnt / "ballast-2", 0)
            time.sleep(rng.uniform(1.0, 2.0))
            cluster.read_all_acks()
            cluster.read_logs()
            errors_full = sum(cluster.errors.values())
            found, _, _ = cluster.check()
            (mnt / "ballast-1").unlink()
            (mnt / "ballast-2").unlink()
            time.sleep(0.5)
            found2 = {"drained": cluster.drain(timeout=60)}
            more, _, _ = cluster.check()
            for d in (found2, more):
                for k, v in d.items():
                    found.setdefault(k, []).extend(v)
            cluster.stop_all()
            tally.record("sqlite", "fullfs", found, seconds=time.monotonic() - started,
                         note=f"refused while full={errors_full} acked={len(cluster.acked)}")
        finally:
            if args.keep:
                subprocess.run(["cp", "-a", str(mnt), str(mnt) + ".kept"], capture_output=True)
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
            shutil.rmtree(mnt, ignore_errors=True)


def pg_fault_trials(args, tally, kind, count, rng, workdir, receiver, pg):
    """The server killed, or the connections cut, during a drain."""
    done = 0
    while done < count:
        schema = f"chaos_{kind.replace('-', '_')}_{done}"
        proxy = Proxy(pg.port) if kind == "pg-proxy" else None
        url = pg.url if proxy is None else pg.url.replace(f":{pg.port}/", f":{proxy.port}/")
        receiver.clear()
        cluster = Cluster(args, url, receiver, workdir, env_extra={"VOXQ_PG_SCHEMA": schema},
                          check_url=pg.url)
        try:
            for _ in range(min(TRIALS_PER_RUN // 5, count - done)):
                started = time.monotonic()
                cluster.fill()
                time.sleep(rng.uniform(0.2, 1.0))
                cuts_before = proxy.cuts if proxy else 0
                if kind == "pg-server":
                    how = ["SIGKILL postmaster", "pg_ctl stop -m immediate"][done % 2]
                    if how.startswith("SIGKILL"):
                        pg.kill_postmaster()
                    else:
                        pg.stop_immediate()
                    time.sleep(rng.uniform(0.2, 1.5))
                    pg.start()
                else:
                    how = PROXY_MODES[done % len(PROXY_MODES)]  # every mode, in turn
                    if how == "cut":
                        proxy.cut_all()
                    elif how == "cut-after-commit":
                        proxy.armed = (b"COMMIT",)
                    elif how == "cut-after-claim":
                        # Prepared statements travel by name (Bind), after the first Parse.
                        proxy.armed = (b"voxq_claim",)
                    elif how == "cut-after-ack":
                        # A completion (alone or grouped) or a retry.
                        proxy.armed = (b"voxq_set_state", b"voxq_complete_group")
                    elif how == "delay":
                        proxy.mode = "delay"
                        time.sleep(rng.uniform(0.5, 2.0))
                        proxy.mode = "pass"
                    else:
                        proxy.blackhole()
                        time.sleep(rng.uniform(3.5, 5.0))  # past VOXQ_PG_QUERY_TIMEOUT
                    time.sleep(0.5)
                    proxy.armed = None
                cluster.fill()
                time.sleep(0.5)
                found, _, _ = cluster.check()
                # Every process is still running (or was restarted): none hung.
                done += 1
                if proxy:
                    how += f" ({proxy.cuts - cuts_before} connections cut)"
                tally.record("postgres", kind, found, seconds=time.monotonic() - started,
                             note=how)
            started = time.monotonic()
            found = {"drained": cluster.drain()}
            more, _, _ = cluster.check()
            for k, v in more.items():
                found.setdefault(k, []).extend(v)
            tally.record("postgres", kind + " (drain)", found, faults=0,
                         seconds=time.monotonic() - started, note=cluster.summary())
        finally:
            cluster.stop_all()
            try:
                # Black-holed sessions are still open on the server (idle, no locks).
                pg.psql(f"SET lock_timeout = '30s'; DROP SCHEMA IF EXISTS {schema} CASCADE")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                tally.examples.append(f"postgres {kind}: could not drop {schema}: {e}")
                log(tally.out, f"could not drop {schema}: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxq", required=True)
    ap.add_argument("--fault-vfs", required=True)
    ap.add_argument("--python-path", required=True, help="where the built _voxq module is")
    ap.add_argument("--scale", choices=sorted(SCALES), default="short")
    ap.add_argument("--out", default="chaos-out")
    ap.add_argument("--only", default="", help="comma-separated fault kinds (default: all)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", action="store_true", help="keep databases and logs (debugging)")
    args = ap.parse_args()
    args.voxq = str(pathlib.Path(args.voxq).resolve())
    args.fault_vfs = str(pathlib.Path(args.fault_vfs).resolve())
    args.python_path = str(pathlib.Path(args.python_path).resolve())  # processes run elsewhere
    out_dir = pathlib.Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="voxq-chaos."))
    os.chmod(workdir, 0o755)  # the PostgreSQL server runs as postgres
    scale = SCALES[args.scale]
    only = set(filter(None, args.only.split(",")))
    rng = random.Random(args.seed)
    started = time.monotonic()
    with open(out_dir / "chaos.log", "w") as out:
        log(out, f"seed {args.seed}, scale {args.scale}")
        tally = Tally(out, out_dir / "table.md")
        receiver = Receiver()
        args.postgres = None
        try:
            def want(kind):
                return not only or kind in only

            self_test(args, receiver, workdir)
            log(out, "self-test: every planted violation was found")

            for kind, sync in (("sqlite-full-kill", "FULL"), ("sqlite-normal-kill", "NORMAL")):
                if not want(kind):
                    continue
                def factory(sync=sync):
                    d = pathlib.Path(tempfile.mkdtemp(prefix="kill.", dir=workdir))
                    receiver.clear()
                    return Cluster(args, f"sqlite:///{d}/queue.db", receiver, d,
                                   env_extra={"VOXQ_SQLITE_SYNCHRONOUS": sync})

                kill_trials(args, tally, "sqlite", f"kill ({sync})", factory, scale[kind], rng)
            if want("vfs"):
                vfs_trials(args, tally, scale["vfs"], rng, workdir, receiver)
            if want("fullfs"):
                fullfs_trials(args, tally, scale["fullfs"], rng, workdir, receiver)
            if any(want(k) for k in ("pg-kill", "pg-server", "pg-proxy")):
                args.postgres = Postgres(workdir)
                pg = args.postgres
                if want("pg-kill"):
                    serial = iter(range(10_000))

                    def pg_factory():
                        receiver.clear()
                        return Cluster(args, pg.url, receiver, workdir,
                                       env_extra={"VOXQ_PG_SCHEMA": f"chaos_kill_{next(serial)}"})

                    kill_trials(args, tally, "postgres", "kill", pg_factory, scale["pg-kill"], rng)
                for kind in ("pg-server", "pg-proxy"):
                    if want(kind):
                        pg_fault_trials(args, tally, kind, scale[kind], rng, workdir, receiver, pg)
        finally:
            if args.postgres is not None:
                args.postgres.close()
            if args.keep:
                log(out, f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        table, violations = tally.table()
        minutes = (time.monotonic() - started) / 60
        summary = f"{table}\n\nTook {minutes:.1f} min (seed {args.seed}, scale {args.scale})."
        if tally.examples:
            summary += "\n\nFirst findings:\n" + "\n".join(tally.examples[:20])
        log(out, summary)
        (out_dir / "table.md").write_text(summary + "\n")
        print(summary)
        return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
