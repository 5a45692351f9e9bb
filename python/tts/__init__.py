"""Speech requests, as the guide writes them: ``from tts import TextToSpeechRequest``.

``synthesize`` runs voxq's engines (espeak-ng in its helper processes, or an
OpenAI-compatible server set by VOXQ_ENGINE_<NAME>_URL) off the event loop.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

# espeak-ng runs in voxq's helper program, shipped next to the extension module.
_helper = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "voxq-espeak")
if "VOXQ_ESPEAK_HELPER" not in os.environ and os.path.exists(_helper):
    os.environ["VOXQ_ESPEAK_HELPER"] = _helper

import _voxq  # noqa: E402  (after the helper's path is known)


@dataclass
class TextToSpeechRequest:
    """One piece of speech: ``voice_id`` is ``engine.voice`` (``kokoro.af_heart``)."""

    text: str
    voice_id: str
    speed: float = 1.0
    format: str = "wav"


@dataclass
class Speech:
    audio: bytes
    content_type: str
    seconds: float


async def synthesize(request: TextToSpeechRequest) -> Speech:
    """Synthesizes and encodes ``request`` in a worker thread (the GIL released)."""
    audio, content_type, seconds = await asyncio.get_running_loop().run_in_executor(
        None, _voxq.synthesize, request.text, request.voice_id, request.speed, request.format)
    return Speech(audio, content_type, seconds)


FORMATS = tuple(_voxq.audio_formats())

__all__ = ["TextToSpeechRequest", "Speech", "synthesize", "FORMATS"]
