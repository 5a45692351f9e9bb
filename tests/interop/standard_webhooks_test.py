"""Deliveries verified by the official Standard Webhooks libraries.

A real `voxq worker` (espeak, every format, two voices, a two-item task) delivers
signed JSON events to a receiver written on the npm `standardwebhooks` and `svix`
packages (standard_webhooks_receiver.cjs, installed from the committed
package-lock.json). Every delivery must verify with both libraries under each of
the two secrets (rotation), the audio in each event must be what the event says,
and libsndfile (python3-soundfile) must read every file back at the event's rate
and duration. One item is answered 503 once: its retry carries the same webhook-id.
"""
import json
import os
import re
import tempfile

import pytest
import soundfile

from support import drain, enqueue, new_secret, start_node, stop

FORMATS = ["wav", "pcm", "mp3", "opus", "flac"]
VOICES = ["espeak.en-us", "espeak.fr-fr"]


@pytest.fixture
def work():
    with tempfile.TemporaryDirectory(prefix="voxq-interop-") as d:
        yield d


def test_every_json_delivery_verifies_with_the_official_libraries(voxq, work):
    old, new = new_secret(), new_secret()
    out = os.path.join(work, "received")
    os.mkdir(out)
    tasks = []
    for voice in VOICES:
        for fmt in FORMATS:
            tasks.append({"id": f"{voice.split('.')[1]}-{fmt}",
                          "items": [{"request": {"text": f"Verified by the library, in {fmt}.",
                                                 "voice_id": voice, "format": fmt}}]})
    tasks.append({"id": "two-items", "items": [
        {"request": {"text": "First of two.", "voice_id": "espeak.en", "format": "wav"}},
        {"request": {"text": "Second of two.", "voice_id": "espeak.en", "format": "opus"}}]})
    retried = "two-items#1"

    receiver, port = start_node("standard_webhooks_receiver.cjs", [out],
                                dict(os.environ, SECRETS=f"{old} {new}", FAIL_FIRST=retried))
    try:
        for t in tasks:
            for item in t["items"]:
                item["response_url"] = f"http://127.0.0.1:{port}/hooks/speech"
        env = dict(os.environ, QUEUE_DATABASE_URL=f"sqlite:///{work}/q.db",
                   VOXQ_WEBHOOK_SECRET=f"{old} {new}", VOXQ_WEBHOOK_ALLOW_NETS="127.0.0.1/32",
                   QUEUE_RETRY_BASE_DELAY="0")
        env.pop("VOXQ_WEBHOOK_PAYLOAD", None)  # the default is what is tested
        enqueue(voxq, env, work, tasks)
        stats, log = drain(voxq, env, len(tasks))
        assert stats["completed"] == len(tasks), (stats, log)
    finally:
        stop(receiver)

    records = [json.loads(line) for line in open(os.path.join(out, "received.jsonl"))]
    items = sum(len(t["items"]) for t in tasks)
    assert len(records) == items + 1, records  # one retry
    for r in records:
        what = f"{r.get('data', {}).get('task_id')}#{r.get('data', {}).get('item_index')}"
        assert r["standardwebhooks"] == [True, True], (what, r["standardwebhooks"])
        assert r["svix"] == [True, True], (what, r["svix"])
        assert r["content_type"] == "application/json"
        assert re.fullmatch(r"voxq/\d+\.\d+\.\d+", r["user_agent"]), r["user_agent"]
        assert re.fullmatch(r"[A-Za-z0-9_-]+", r["webhook_id"]), r["webhook_id"]
        assert r["type"] == "speech.item.ready"
        assert r["sha256_matches"] and r["bytes_match"], what
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", r["timestamp"])

    # The retried item came again under the same webhook-id; no other id repeats.
    by_item = {}
    for r in records:
        by_item.setdefault(f"{r['data']['task_id']}#{r['data']['item_index']}", []).append(r)
    assert [x["status"] for x in by_item[retried]] == [503, 204]
    assert by_item[retried][0]["webhook_id"] == by_item[retried][1]["webhook_id"]
    assert by_item[retried][1]["data"]["attempt"] == by_item[retried][0]["data"]["attempt"] + 1
    ids = [r["webhook_id"] for r in records if r["status"] == 204]
    assert len(set(ids)) == items, "two items share a webhook-id"

    # libsndfile reads every file at the rate and length the event states.
    for r in records:
        if r["status"] != 204:
            continue
        data, path = r["data"], os.path.join(out, r["file"])
        if data["format"] == "pcm":  # raw: the label says how to read it
            assert data["content_type"] == (f"audio/pcm;rate={data['sample_rate']};channels=1;"
                                            "format=s16le")
            samples, rate = soundfile.read(path, dtype="int16", samplerate=data["sample_rate"],
                                           channels=1, format="RAW", subtype="PCM_16",
                                           endian="LITTLE")
        else:
            info = soundfile.info(path)
            assert info.channels == data["channels"] == 1
            samples, rate = soundfile.read(path, dtype="int16")
            # Opus decodes at one of its own rates (libsndfile picks the one
            # nearest the speech's); the event states the rate of the speech.
            if data["format"] == "opus":
                assert rate in (8000, 12000, 16000, 24000, 48000), r
            else:
                assert rate == data["sample_rate"], r
        seconds = len(samples) / rate
        assert abs(seconds - data["duration_seconds"]) < 0.1, (r["file"], seconds, data)
        assert abs(samples.astype("int32")).max() > 1000, f"{r['file']} is silence"
