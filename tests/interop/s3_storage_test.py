"""Object storage against an S3-compatible store that checks signatures as S3 does.

s3_gate.cjs stores objects in memory and recomputes every request's SigV4
signature with AWS's own signer (@smithy/signature-v4): the worker's signed PUTs
and the presigned GET links in its events. A real `voxq worker` delivers JSON
events (verified by the official standardwebhooks library) that link to the
audio; the links fetch exactly the audio until they expire and not after; a
retried item overwrites its object; a wrong secret key discards with S3's message.
"""
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from support import drain, enqueue, new_secret, start_node, stop, stats

BUCKET = "voxq-audio"
ACCESS_KEY = "AKIAVOXQTEST0000"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def work():
    with tempfile.TemporaryDirectory(prefix="voxq-s3-") as d:
        yield d


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_audio_goes_to_object_storage_and_the_event_links_to_it(voxq, work):
    secret = new_secret()
    out = os.path.join(work, "received")
    os.mkdir(out)
    gate, s3_port = start_node("s3_gate.cjs", [os.path.join(work, "s3.jsonl")],
                               dict(os.environ, S3_BUCKET=BUCKET, S3_ACCESS_KEY=ACCESS_KEY,
                                    S3_SECRET_KEY=SECRET_KEY, S3_REGION="eu-west-1"))
    receiver, port = start_node("standard_webhooks_receiver.cjs", [out],
                                dict(os.environ, SECRETS=secret, FAIL_FIRST="two:items#1"))
    try:
        url = f"http://127.0.0.1:{port}/hook"
        tasks = [{"id": "one-wav", "items": [{"request": {"text": "Stored, then linked.",
                                                          "voice_id": "espeak.en", "format": "wav"},
                                              "response_url": url}]},
                 {"id": "two:items", "items": [
                     {"request": {"text": "First.", "voice_id": "espeak.en", "format": "mp3"},
                      "response_url": url},
                     {"request": {"text": "Second.", "voice_id": "espeak.fr", "format": "opus"},
                      "response_url": url}]}]
        env = dict(os.environ, QUEUE_DATABASE_URL=f"sqlite:///{work}/q.db",
                   VOXQ_WEBHOOK_SECRET=secret, VOXQ_WEBHOOK_ALLOW_NETS="127.0.0.1/32",
                   QUEUE_RETRY_BASE_DELAY="0", VOXQ_STORAGE_URL=f"s3://{BUCKET}/speech/",
                   VOXQ_S3_ENDPOINT=f"http://127.0.0.1:{s3_port}", VOXQ_S3_REGION="eu-west-1",
                   AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                   VOXQ_STORAGE_URL_TTL="600")
        env.pop("VOXQ_WEBHOOK_PAYLOAD", None)
        env.pop("AWS_SESSION_TOKEN", None)
        enqueue(voxq, env, work, tasks)
        s, log = drain(voxq, env, len(tasks))
        assert s["completed"] == 2, (s, log)

        # Objects under the documented keys; the retried item's upload overwrote.
        _, listing = fetch(f"http://127.0.0.1:{s3_port}/__objects")
        objects = json.loads(listing)
        assert sorted(objects) == ["speech/one-wav/0.wav", "speech/two:items/0.mp3",
                                   "speech/two:items/1.ogg"], objects
        assert objects["speech/two:items/1.ogg"]["puts"] == 2, "a retry must overwrite"
        assert objects["speech/two:items/1.ogg"]["content_type"] == "audio/ogg; codecs=opus"
        requests = [json.loads(line) for line in open(os.path.join(work, "s3.jsonl"))]
        assert all(r["status"] == 200 for r in requests), requests

        records = [json.loads(line) for line in open(os.path.join(out, "received.jsonl"))]
        delivered = [r for r in records if r["status"] == 204]
        assert len(delivered) == 3 and len(records) == 4
        for r in delivered:
            assert r["standardwebhooks"] == [True], r
            data = r["data"]
            assert "audio_base64" not in data or data["audio_base64"] is None
            link = urlsplit(data["audio_url"])
            query = parse_qs(link.query)
            signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=timezone.utc)
            assert query["X-Amz-Expires"] == ["600"]
            expires = datetime.strptime(data["audio_url_expires_at"],
                                        "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            assert (expires - signed_at).total_seconds() == 600
            # The link fetches exactly the audio the event describes.
            status, audio = fetch(data["audio_url"])
            assert status == 200, audio
            assert len(audio) == data["bytes"]
            assert hashlib.sha256(audio).hexdigest() == data["sha256"]
        # voxq say writes to storage too, and prints a link that fetches it.
        said = __import__("subprocess").run(
            [voxq, "say", "--voice", "espeak.en", "--text", "Said into a bucket.", "--format",
             "opus", "-o", f"s3://{BUCKET}/say/hello.ogg"], env=env, check=True,
            capture_output=True, text=True).stdout.splitlines()
        status, audio = fetch(said[1])
        assert status == 200 and audio[:4] == b"OggS", said

        # A tampered link is refused by the signature check.
        tampered = delivered[0]["data"]["audio_url"].replace("/0.", "/1.")
        status, body = fetch(tampered)
        assert status == 403 and b"SignatureDoesNotMatch" in body, body
        # After the TTL the links are refused, as S3 refuses them.
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{s3_port}/__advance?seconds=601", method="POST"), timeout=10)
        status, body = fetch(delivered[0]["data"]["audio_url"])
        assert status == 403 and b"Request has expired" in body, body

        # A wrong secret key: the store refuses, the task is discarded with its word.
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-key"
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{s3_port}/__advance?seconds=-601", method="POST"), timeout=10)
        enqueue(voxq, env, work, [{"id": "wrong-key", "items": [{"request": {
            "text": "Never stored.", "voice_id": "espeak.en"}, "response_url": url}]}],
            name="wrong.jsonl")
        s, log = drain(voxq, env, 3)
        assert s["discarded"] == 1, (s, log)
        shown = json.loads(__import__("subprocess").run(
            [voxq, "show", "wrong-key", "--json"], env=env, check=True, capture_output=True,
            text=True).stdout)
        assert shown["state"] == "DISCARDED"
        assert re.search(r"HTTP 403 SignatureDoesNotMatch", shown["last_error"]), shown
        assert "not-the-key" not in shown["last_error"]
    finally:
        stop(receiver)
        stop(gate)
