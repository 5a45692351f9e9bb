"""The HTTP boundary under attack (SPEC §8, §12), over real sockets on 127.0.0.1.

Each test starts a real `voxq serve` or `voxq sink` process, sends what a hostile
or broken client would, and checks the answer, that the process is still alive,
that its peak RSS (VmHWM) grew by less than the documented bound, and that
nothing was stored for a refused request. Every JSON answer of `voxq serve` is
checked against its own OpenAPI document.

usage: python3 -m pytest tests/server/attack_test.py --voxq build/bin/voxq
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import jsonschema
import pytest

# Peak RSS a server may gain over the whole of one attack (README: "What the HTTP
# boundary guarantees"): 64 MB for voxq serve; for voxq sink, which takes bodies
# of up to 32 MiB, 128 MB.
RSS_BOUND_MB = {"serve": 64, "sink": 128}
TOKEN = "attack-token-0123456789abcdef"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GOOD_TASK = {"items": [{"request": {"text": "ok", "voice_id": "espeak.en"},
                        "response_url": "http://e.com/"}]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, kind, voxq, env=None, token=None):
        self.kind = kind
        self.work = tempfile.mkdtemp(prefix=f"voxq-attack-{kind}-")
        self.port = free_port()
        self.token = token
        environment = dict(os.environ, QUEUE_DATABASE_URL=f"sqlite:///{self.work}/q.db")
        environment.pop("VOXQ_API_TOKEN", None)
        environment.pop("VOXQ_WEBHOOK_SECRET", None)
        if token:
            environment["VOXQ_API_TOKEN"] = token
        environment.update(env or {})
        if kind == "serve":
            argv = [voxq, "serve", "--no-worker", "--port", str(self.port)]
        else:
            environment["VOXQ_SINK_SECRET"] = SECRET
            argv = [voxq, "sink", "--port", str(self.port), "--dir", f"{self.work}/out"]
        self.log = open(os.path.join(self.work, "log"), "w")
        self.proc = subprocess.Popen(argv, env=environment, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{kind} did not start: {open(self.log.name).read()}")

    def alive(self):
        return self.proc.poll() is None

    def peak_rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0

    def stored(self):
        """Tasks in the database, or files the sink saved."""
        if self.kind == "sink":
            out = os.path.join(self.work, "out")
            return len([n for n in os.listdir(out) if n != "deliveries.jsonl"]) if os.path.isdir(out) else 0
        status, _, body = request(self, "GET", "/v1/stats", headers=self.auth())
        assert status == 200, body
        return json.loads(body)["total"]

    def auth(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


# Bytes read past the end of one response (a pipelined next one), per socket.
_leftover = {}


def connect(server, timeout=10):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    _leftover[id(s)] = b""
    return s


def read_response(s):
    """One HTTP response from a socket: (status, headers, body), or None on EOF."""
    data = _leftover.get(id(s), b"")
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    _leftover[id(s)] = rest[length:]  # the start of the next response, if any
    return status, headers, rest[:length]


def raw(server, data, timeout=10):
    """Sends bytes, returns every response until the server closes (or times out)."""
    s = connect(server, timeout)
    try:
        s.sendall(data)
        answers = []
        while True:
            try:
                r = read_response(s)
            except (socket.timeout, ConnectionResetError):
                break
            if r is None:
                break
            answers.append(r)
            if r[1].get("connection", "").lower() == "close":
                break
        return answers
    finally:
        s.close()


def flood(s, piece, times):
    """Sends `piece` up to `times` times until the server stops reading; returns how
    many went out and the server's answer (None if it only reset)."""
    sent = 0
    try:
        for _ in range(times):
            s.sendall(piece)
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(5)
    try:
        answer = read_response(s)
    except (ConnectionResetError, socket.timeout):
        answer = None
    s.close()
    return sent, answer


def request(server, method, path, body=b"", headers=None):
    h = {"Host": f"127.0.0.1:{server.port}", "Connection": "close"}
    h.update(headers or {})
    if body or method == "POST":
        h.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    answers = raw(server, head.encode("latin-1") + body)
    assert answers, f"no answer to {method} {path}"
    status, hdrs, payload = answers[0]
    if server.kind == "serve" and hdrs.get("content-type", "").startswith("application/json"):
        check_against_openapi(status, payload)
    return status, hdrs, payload


_OPENAPI = {}


def check_against_openapi(status, payload):
    """Every JSON answer is valid JSON; every error has the documented shape."""
    document = json.loads(payload)
    if status >= 400:
        spec = _OPENAPI["spec"]
        schema = dict(spec["components"]["schemas"]["Error"])
        jsonschema.validate(document, schema)


def validate_openapi(spec):
    """The document's own checks (Debian 12 has no python3-openapi-spec-validator):
    OpenAPI 3.1, every schema a valid JSON Schema 2020-12, every $ref resolvable,
    every operation with responses."""
    assert spec["openapi"].startswith("3.1")
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    resolver = jsonschema.RefResolver.from_schema(spec)

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    resolver.resolve(v)
                else:
                    refs(v)
        elif isinstance(node, list):
            for v in node:
                refs(v)
    refs(spec)
    for path, item in spec["paths"].items():
        assert path.startswith("/")
        for method, op in item.items():
            assert method in ("get", "post"), (path, method)
            assert op["responses"], (path, method)


@pytest.fixture(scope="session")
def voxq(request):
    Peak.sanitized = request.config.getoption("--sanitized")
    path = request.config.getoption("--voxq")
    assert path and os.access(path, os.X_OK), "--voxq build/bin/voxq is needed"
    return path


@pytest.fixture(scope="session", autouse=True)
def openapi(voxq):
    s = Server("serve", voxq)
    try:
        status, _, body = raw(s, f"GET /v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                                 f"Connection: close\r\n\r\n".encode())[0]
        assert status == 200
        spec = json.loads(body)
        validate_openapi(spec)
        _OPENAPI["spec"] = spec
    finally:
        s.close()


@pytest.fixture(params=["serve", "sink"])
def server(request, voxq):
    s = Server(request.param, voxq, token=TOKEN if request.param == "serve" else None)
    yield s
    assert s.alive(), f"{s.kind} died: {open(s.log.name).read()[-2000:]}"
    s.close()


@pytest.fixture
def serve(voxq):
    s = Server("serve", voxq)
    yield s
    assert s.alive(), open(s.log.name).read()[-2000:]
    s.close()


@pytest.fixture
def serve_token(voxq):
    s = Server("serve", voxq, token=TOKEN)
    yield s
    assert s.alive(), open(s.log.name).read()[-2000:]
    s.close()


class Peak:
    """Asserts that a block grew the server's peak RSS by less than the bound (not
    in sanitizer builds, whose allocators keep freed memory in quarantine)."""

    sanitized = False

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        self.before = self.server.peak_rss_mb()
        return self

    def __exit__(self, *exc):
        grown = self.server.peak_rss_mb() - self.before
        print(f"{self.server.kind}: peak RSS grew {grown:.1f} MB")
        if Peak.sanitized:
            return
        assert grown < RSS_BOUND_MB[self.server.kind], f"peak RSS grew {grown:.1f} MB"


# --- every server -----------------------------------------------------------

def test_invalid_utf8_paths_get_an_answer_and_the_process_lives(server):
    for path in ["/%FF", "/x%C3", "/v1/tasks/%FF", "/v1/tasks?state=%FF", "/v1/tasks/%FF/cancel",
                 "/%00"]:
        status, _, body = request(server, "GET", path, headers=server.auth())
        assert status in (400, 404, 405), (path, status, body)
    answers = raw(server, b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answers and answers[0][0] in (400, 404, 405)
    assert server.alive()


def test_a_huge_chunked_body_is_refused_without_being_kept(server):
    target = "/inbox" if server.kind == "serve" else "/hook"
    stored = server.stored()
    with Peak(server):
        s = connect(server, timeout=20)
        head = (f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Transfer-Encoding: chunked\r\nContent-Type: audio/wav\r\nwebhook-id: big\r\n"
                f"webhook-timestamp: {int(time.time())}\r\nwebhook-signature: v1,x\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n")
        s.sendall(head.encode())
        sent, answer = flood(s, b"100000\r\n" + b"a" * 0x100000 + b"\r\n", 200)  # 200 MiB
        assert sent < 200, "the whole 200 MiB was read"
        if answer is not None:
            assert answer[0] == 413, answer
    assert server.stored() == stored


def test_a_huge_header_line_is_431_before_it_is_buffered(server):
    with Peak(server):
        s = connect(server)
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Long: ".encode())
        sent, answer = flood(s, b"a" * (1 << 20), 150)  # 150 MiB
        assert sent < 150, "the whole 150 MiB header line was read"
        if answer is not None:
            assert answer[0] == 431, answer


def test_smuggling_framings_are_refused(server):
    target = "/v1/tasks" if server.kind == "serve" else "/hook"
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    cases = [
        f"POST {target} HTTP/1.1\r\n{host}Content-Length: 2\r\nContent-Length: 5\r\n\r\n{{}}",
        f"POST {target} HTTP/1.1\r\n{host}Content-Length: 2\r\nContent-Length: 2\r\n\r\n{{}}",
        f"POST {target} HTTP/1.1\r\n{host}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        f"POST {target} HTTP/1.1\r\n{host}Transfer-Encoding: chunked, identity\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n",
        f"POST {target} HTTP/1.1\r\n{host}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        f"POST {target} HTTP/1.1\r\n{host}Transfer-Encoding: xchunked\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    ]
    stored = server.stored()
    for case in cases:
        answers = raw(server, case.encode())
        assert len(answers) == 1, (case, answers)
        assert answers[0][0] == 400, (case, answers[0])
        assert answers[0][1].get("connection", "").lower() == "close"
    assert server.stored() == stored


def test_compressed_bodies_are_refused(server):
    import gzip
    bomb = gzip.compress(b"[" * (64 << 20))
    target = "/v1/tasks" if server.kind == "serve" else "/hook"
    status, _, _ = request(server, "POST", target, bomb,
                           {"Content-Encoding": "gzip", "Content-Type": "application/json",
                            "webhook-id": "gz", "webhook-timestamp": str(int(time.time())),
                            **server.auth()})
    assert status == 415


def test_slow_clients_do_not_take_the_service_down(server):
    sockets = []
    for _ in range(60):
        s = connect(server)
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode())
        sockets.append(s)
    try:
        for _ in range(3):
            for s in sockets:
                s.sendall(b"X-Slow: 1\r\n")
            start = time.monotonic()
            if server.kind == "serve":
                status, _, _ = request(server, "GET", "/healthz")
                assert status == 200
            else:
                status, _, _ = request(server, "GET", "/")
                assert status == 405
            assert time.monotonic() - start < 2
            time.sleep(0.5)
    finally:
        for s in sockets:
            s.close()


def test_an_early_answer_closes_the_connection_so_the_body_is_never_a_request(server):
    # The body of a refused request is another request: it must never be answered.
    smuggled = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    target = "/v1/tasks" if server.kind == "serve" else "/hook"
    s = connect(server)
    s.sendall(f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode())
    time.sleep(0.3)
    try:
        s.sendall(smuggled)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answers = []
    s.settimeout(5)
    try:
        while True:
            r = read_response(s)
            if r is None:
                break
            answers.append(r)
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    assert len(answers) == 1, answers
    assert answers[0][0] in (400, 401)


def test_a_get_body_is_read_and_ignored(serve):
    # On a kept-alive connection: a GET whose body is a request, then a last request.
    # Exactly two answers: the body was read as a body, never answered as a request.
    # (The sink has no GET route: its 405 closes the connection, as any early answer.)
    host = f"Host: 127.0.0.1:{serve.port}\r\n"
    smuggled = f"GET /smuggled HTTP/1.1\r\n{host}\r\n"
    answers = raw(serve, (f"GET /healthz HTTP/1.1\r\n{host}Content-Length: {len(smuggled)}\r\n\r\n"
                          + smuggled + f"GET /healthz HTTP/1.1\r\n{host}Connection: close\r\n\r\n"
                          ).encode())
    assert [a[0] for a in answers] == [200, 200], answers


def test_a_post_without_a_length_is_answered_at_once(server):
    target = "/v1/tasks/x/cancel" if server.kind == "serve" else "/hook"
    start = time.monotonic()
    answers = raw(server, f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode())
    assert answers and time.monotonic() - start < 2
    assert answers[0][0] in (400, 404)


def ask_until(server, probe, status, seconds=5):
    """Sends `probe` on fresh connections until the first answer is `status` or
    `seconds` pass; returns the last answers (for the assertion's message)."""
    deadline = time.monotonic() + seconds
    answers = raw(server, probe)
    while not (answers and answers[0][0] == status) and time.monotonic() < deadline:
        time.sleep(0.1)
        answers = raw(server, probe)
    return answers


def test_too_many_connections_from_one_client_are_refused(voxq):
    for kind in ("serve",):
        # The held connections stay silent: a header deadline far past the test's
        # length keeps them counted however slow a busy machine makes the probes
        # (with the default 10 s, a probe answered after that was served: the
        # server had already dropped the held ones).
        s = Server(kind, voxq, env={"VOXQ_API_MAX_CONNECTIONS_PER_CLIENT": "8",
                                    "VOXQ_API_HEADER_TIMEOUT": "120"})
        try:
            held = [connect(s) for _ in range(8)]
            # The server counts a connection once it has accepted it, which a busy
            # machine may do later than connect() returns here: ask until the
            # ninth is refused.
            probe = (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                     "Connection: close\r\n\r\n").encode()
            answers = ask_until(s, probe, 503, seconds=30)
            assert answers and answers[0][0] == 503, answers
            for h in held:
                h.close()
            # Freed once the server has read their EOF: again, ask for a while.
            answers = ask_until(s, probe, 200)
            assert answers and answers[0][0] == 200, answers
        finally:
            s.close()


def test_an_unfinished_header_is_cut_at_the_deadline(voxq):
    s = Server("serve", voxq, env={"VOXQ_API_HEADER_TIMEOUT": "1"})
    try:
        c = connect(s)
        c.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n".encode())
        start = time.monotonic()
        for _ in range(4):  # a line every 0.5 s: each within any idle timeout
            time.sleep(0.5)
            try:
                c.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        c.settimeout(5)
        try:
            answer = read_response(c)
        except ConnectionResetError:
            answer = None
        assert time.monotonic() - start < 4
        assert answer is None or answer[0] == 408
        c.close()
    finally:
        s.close()


# --- voxq serve ----------------------------------------------------------------

def test_deep_json_is_refused_while_parsing(serve):
    with Peak(serve):
        for body in [b"[" * ((4 << 20) - 64), b"[" + b"{}," * ((4 << 20) // 3 - 10) + b"{}]"]:
            start = time.monotonic()
            status, _, payload = request(serve, "POST", "/v1/tasks", body,
                                         {"Content-Type": "application/json"})
            assert status == 400, payload[:200]
            # Refused in one linear pass (a quadratic parse took minutes here).
            assert time.monotonic() - start < 5
    assert serve.stored() == 0


def test_tokenless_mode_refuses_other_sites(serve):
    body = json.dumps(GOOD_TASK).encode()
    cases = [
        ({"Origin": "https://evil.example", "Content-Type": "application/json"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Host": "rebind.evil.example:80", "Content-Type": "application/json"}, 403),
        ({"Host": "127.0.0.1.evil.example", "Content-Type": "application/json"}, 403),
    ]
    for headers, expected in cases:
        status, _, payload = request(serve, "POST", "/v1/tasks", body, headers)
        assert status == expected, (headers, payload)
    status, _, _ = request(serve, "GET", "/v1/tasks", headers={"Host": "rebind.evil.example"})
    assert status == 403
    status, _, _ = request(serve, "POST", "/v1/tasks", body,
                           {"Origin": f"http://127.0.0.1:{serve.port}",
                            "Content-Type": "application/json"})
    assert status == 201
    assert serve.stored() == 1


def test_the_token_is_a_header_in_any_case_and_never_a_query(serve_token):
    s = serve_token
    status, _, _ = request(s, "GET", f"/v1/stats?access_token={TOKEN}")
    assert status == 401
    for scheme in ("Bearer", "bearer", "BEARER"):
        status, _, _ = request(s, "GET", "/v1/stats", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert status == 200, scheme
    status, _, _ = request(s, "GET", "/v1/stats", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert status == 401


def test_the_inbox_takes_only_signed_or_authorized_deliveries(serve_token):
    s = serve_token
    stored_before = request(s, "GET", "/inbox/abc", headers=s.auth())[0]
    assert stored_before == 404
    status, _, _ = request(s, "POST", "/inbox", b"<script>alert(1)</script>",
                           {"webhook-id": "abc", "Content-Type": "text/html"})
    assert status == 401
    assert request(s, "GET", "/inbox/abc", headers=s.auth())[0] == 404
    # With the token it is kept, and served back as bytes, never as a page.
    status, _, _ = request(s, "POST", "/inbox", b"<script>alert(1)</script>",
                           {"webhook-id": "abc", "Content-Type": "text/html", **s.auth()})
    assert status == 200
    status, headers, body = request(s, "GET", "/inbox/abc", headers=s.auth())
    assert status == 200 and body == b"<script>alert(1)</script>"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-content-type-options"] == "nosniff"


def test_the_inbox_is_bounded_in_entries(serve_token):
    s = serve_token
    with Peak(s):
        c = connect(s)
        for i in range(600):
            head = (f"POST /inbox HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nwebhook-id: f{i}{'x' * 180}\r\n"
                    f"Content-Type: text/html;{'a' * 8000}\r\nAuthorization: Bearer {TOKEN}\r\n"
                    "Content-Length: 0\r\n\r\n")
            c.sendall(head.encode())
            assert read_response(c)[0] == 200
        c.close()
    assert request(s, "GET", f"/inbox/f0{'x' * 180}", headers=s.auth())[0] == 404
    assert request(s, "GET", f"/inbox/f599{'x' * 180}", headers=s.auth())[0] == 200


def test_wrong_methods_are_405_with_allow(serve):
    status, headers, _ = request(serve, "DELETE", "/v1/tasks")
    assert status == 405 and headers["allow"] == "GET, POST"
    status, headers, _ = request(serve, "POST", "/healthz")
    assert status == 405 and headers["allow"] == "GET"


def test_the_dashboard_cannot_be_framed(serve):
    status, headers, _ = request(serve, "GET", "/")
    assert status == 200
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_every_route_answers_what_the_openapi_document_says(serve):
    spec = _OPENAPI["spec"]
    resolver = jsonschema.RefResolver.from_schema(spec)

    def check(status, payload, schema):
        jsonschema.validate(json.loads(payload), schema, resolver=resolver)

    s = serve
    body = json.dumps(GOOD_TASK).encode()
    paths = spec["paths"]
    st, _, p = request(s, "POST", "/v1/tasks", body, {"Content-Type": "application/json"})
    check(st, p, paths["/v1/tasks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"])
    task_id = json.loads(p)["id"]
    st, _, p = request(s, "POST", "/v1/tasks", json.dumps({"tasks": [GOOD_TASK, GOOD_TASK]}).encode(),
                       {"Content-Type": "application/json"})
    assert st == 201
    check(st, p, paths["/v1/tasks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"])
    for path, spec_path in [("/v1/tasks", "/v1/tasks"), (f"/v1/tasks/{task_id}", "/v1/tasks/{id}"),
                            ("/v1/stats", "/v1/stats"), ("/v1/voices", "/v1/voices"),
                            ("/healthz", "/healthz")]:
        st, _, p = request(s, "GET", path)
        assert st == 200, (path, p)
        check(st, p, paths[spec_path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    st, _, p = request(s, "POST", f"/v1/tasks/{task_id}/cancel")
    assert st == 200
    check(st, p, paths["/v1/tasks/{id}/cancel"]["post"]["responses"]["200"]["content"]["application/json"]["schema"])
    st, _, p = request(s, "POST", f"/v1/tasks/{task_id}/cancel")
    assert st == 409


# --- voxq sink -----------------------------------------------------------------

def test_the_sink_refuses_a_huge_content_length_before_reading(voxq):
    s = Server("sink", voxq)
    try:
        answers = raw(s, (f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nwebhook-id: a\r\n"
                          f"webhook-timestamp: {int(time.time())}\r\nwebhook-signature: v1,x\r\n"
                          f"Content-Length: {200 << 20}\r\n\r\n").encode())
        assert answers and answers[0][0] == 413
        assert s.stored() == 0
    finally:
        s.close()


def test_the_sink_never_says_saved_when_the_disk_is_full(voxq):
    """A full disk: 507 (which the sender retries), no file left behind, and the
    sink goes on. Needs root to mount a small tmpfs; skipped where it cannot."""
    mount = tempfile.mkdtemp(prefix="voxq-full-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount],
                      capture_output=True).returncode != 0:
        os.rmdir(mount)
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        work = tempfile.mkdtemp()
        port = free_port()
        log = open(os.path.join(work, "log"), "w")
        env = dict(os.environ)
        env.pop("VOXQ_SINK_SECRET", None)
        p = subprocess.Popen([voxq, "sink", "--port", str(port), "--dir", mount], env=env,
                             stdout=log, stderr=log)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            s = type("S", (), {"port": port, "kind": "sink"})()
            body = b"RIFF" + b"x" * (256 << 10)
            status, _, payload = request(s, "POST", "/hook", body,
                                         {"webhook-id": "full", "Content-Type": "audio/wav",
                                          "webhook-timestamp": str(int(time.time()))})
            assert status == 507, payload
            assert b"not saved" in payload
            assert not [n for n in os.listdir(mount) if n.startswith("full")], os.listdir(mount)
            # A delivery that fits is saved: the sink went on.
            status, _, _ = request(s, "POST", "/hook", b"RIFFsmall",
                                   {"webhook-id": "small", "Content-Type": "audio/wav",
                                    "webhook-timestamp": str(int(time.time()))})
            assert status == 200
            assert os.path.exists(os.path.join(mount, "small.wav"))
            assert p.poll() is None
        finally:
            p.terminate()
            p.wait(10)
            log.close()
            shutil.rmtree(work, ignore_errors=True)
    finally:
        subprocess.run(["umount", mount])
        os.rmdir(mount)
