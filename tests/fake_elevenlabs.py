"""TEST HELPER: a small server implementing the ElevenLabs text-to-speech API used by the gateway.

A fake, because the real service needs an account; the speech comes from a real gateway backend
(the tone backend, or real Kokoro for end-to-end checks). Implemented as documented:

- WebSocket ``/v1/text-to-speech/{voice_id}/stream-input?model_id=...&output_format=pcm_24000``:
  the first message is ``{"text": " ", "voice_settings": ..., "xi-api-key": ...}`` (or the key in
  the ``xi-api-key`` header); then text messages, ``flush: true`` to speak what is buffered, and
  ``{"text": ""}`` to end. Each audio message carries base64 PCM in ``audio`` and the characters
  it speaks in ``alignment`` and ``normalizedAlignment`` (``chars``, ``charStartTimesMs``,
  ``charDurationsMs``, relative to the message's audio); the end is ``{"isFinal": true}`` and a
  normal close. The service's exact error wording is not documented: a bad key here closes with
  1008 (policy violation), the code ElevenLabs uses for policy errors such as its input timeout.
- ``POST /v1/text-to-speech/{voice_id}/stream/with-timestamps?output_format=pcm_24000``: one JSON
  object per line with ``audio_base64`` and ``alignment`` (``characters``,
  ``character_start_times_seconds``, ``character_end_times_seconds``, from the start of the audio).
  A bad key is HTTP 401 with ``{"detail": {"status": "invalid_api_key", "message": ...}}``.
- ``GET /v1/voices``: ``{"voices": [{"voice_id", "name", "labels"}]}``.

Character times are spread evenly over the audio of the text they belong to; the server records
what it reported (``spoken``) so tests can check the word timings derived from it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.backends.base import Backend
from tests.openai_compatible_server import pcm16, speech

RATE = 24000


@dataclass(frozen=True)
class Reject:
    """Refuse the WebSocket handshake with this HTTP status."""

    status: int
    body: Any = None


@dataclass(frozen=True)
class CloseAfter:
    """Close with ``code`` after ``messages`` audio messages (a cut stream)."""

    messages: int
    code: int = 1011
    reason: str = "internal error"


@dataclass(frozen=True)
class SlowFirst:
    """Wait before the first audio message."""

    delay_s: float


@dataclass(frozen=True)
class RepeatAlignment:
    """Send every audio message's alignment twice: once alone (without audio), the second time
    restarting from the first character of the text, as some models do."""


WsFault = Reject | CloseAfter | SlowFirst | RepeatAlignment


@dataclass
class TimedChar:
    char: str
    start_s: float  # from the start of the request's audio
    end_s: float


@dataclass
class FakeElevenLabs:
    """State and behaviour of the fake service."""

    backend: Backend
    api_key: str = "xi-test-key"
    voices: dict[str, str] = field(default_factory=dict)  # voice_id -> backend voice
    chunk_s: float = 0.3
    pace_s: float = 0.0  # wait between audio messages (a service that is still generating)
    original_alignment: bool = True  # False: only normalizedAlignment, as some models send
    ws_faults: deque[WsFault] = field(default_factory=deque)
    opened: list[dict[str, Any]] = field(default_factory=list)  # BOS message and query, per socket
    texts: list[str] = field(default_factory=list)  # text messages received
    spoken: list[list[TimedChar]] = field(default_factory=list)  # per synthesized text
    closed_by_client: int = 0

    def backend_voice(self, voice_id: str) -> str | None:
        return self.voices.get(voice_id)

    async def synthesize(self, text: str, voice: str, speed: float) -> NDArray[np.float32]:
        parts = [pcm async for pcm in speech(self.backend, text, voice, speed)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def timings(self, text: str, samples: int) -> list[TimedChar]:
        duration = samples / RATE
        step = duration / max(1, len(text))
        timed = [TimedChar(c, i * step, (i + 1) * step) for i, c in enumerate(text)]
        self.spoken.append(timed)
        return timed

    # -- the WebSocket -------------------------------------------------------------------------

    async def stream_input(self, websocket: WebSocket) -> None:
        fault = self.ws_faults.popleft() if self.ws_faults else None
        if isinstance(fault, Reject):
            body = json.dumps(fault.body or {"detail": "rejected"}).encode()
            await websocket.send_denial_response(
                Response(body, status_code=fault.status, media_type="application/json")
            )
            return
        voice = self.backend_voice(websocket.path_params["voice_id"])
        query = dict(websocket.query_params)
        await websocket.accept()
        try:
            bos = json.loads(await websocket.receive_text())
            self.opened.append({"bos": bos, "query": query})
            key = bos.get("xi-api-key") or websocket.headers.get("xi-api-key")
            if key != self.api_key:
                await websocket.close(1008, "Invalid API key")
                return
            if voice is None:
                await websocket.close(1008, "A voice with that voice_id was not found")
                return
            if query.get("output_format") != "pcm_24000" or not query.get("model_id"):
                await websocket.close(1008, "Unsupported output_format or missing model_id")
                return
            speed = float((bos.get("voice_settings") or {}).get("speed", 1.0))
            await self._session(websocket, voice, speed, fault)
        except (WebSocketDisconnect, OSError):
            self.closed_by_client += 1

    async def _session(
        self, websocket: WebSocket, voice: str, speed: float, fault: WsFault | None
    ) -> None:
        buffer = ""
        sent = 0
        first = True
        while True:
            message = json.loads(await websocket.receive_text())
            text = message.get("text", "")
            if text:
                self.texts.append(text)
                buffer += text
            end = text == ""
            if (message.get("flush") or end) and buffer.strip():
                if first and isinstance(fault, SlowFirst):
                    await asyncio.sleep(fault.delay_s)
                first = False
                async for payload in self._messages(buffer, voice, speed, fault):
                    if isinstance(fault, CloseAfter) and sent >= fault.messages:
                        await websocket.close(fault.code, fault.reason)
                        return
                    await websocket.send_text(json.dumps(payload))
                    sent += "audio" in payload and payload["audio"] is not None
                    if self.pace_s:
                        await asyncio.sleep(self.pace_s)
                buffer = ""
            if end:
                if isinstance(fault, CloseAfter):
                    await websocket.close(fault.code, fault.reason)
                    return
                await websocket.send_text(json.dumps({"isFinal": True}))
                await websocket.close(1000)
                return

    async def _messages(
        self, text: str, voice: str, speed: float, fault: WsFault | None
    ) -> AsyncIterator[dict[str, Any]]:
        pcm = await self.synthesize(text, voice, speed)
        chars = self.timings(text, len(pcm))
        step = max(1, round(self.chunk_s * RATE))
        for start in range(0, len(pcm), step):
            t0, t1 = start / RATE, min(len(pcm), start + step) / RATE
            last = start + step >= len(pcm)
            mine = [c for c in chars if t0 <= c.start_s < t1 or (last and c.start_s >= t1)]
            alignment = _ws_alignment(mine, t0)
            if isinstance(fault, RepeatAlignment):
                yield {"audio": None, "alignment": alignment, "normalizedAlignment": None}
                earlier = [c for c in chars if c.start_s < t0]
                if earlier:  # a repeated pass over text already timed
                    replay = _ws_alignment(earlier[: len(mine) + 3], earlier[0].start_s)
                    yield {"audio": None, "alignment": replay, "normalizedAlignment": None}
            yield {
                "audio": base64.b64encode(pcm16(pcm[start : start + step])).decode(),
                "alignment": alignment if self.original_alignment else None,
                "normalizedAlignment": alignment,
            }

    # -- HTTP ----------------------------------------------------------------------------------

    def _refused(self, request: Request) -> JSONResponse | None:
        if request.headers.get("xi-api-key") != self.api_key:
            detail = {"status": "invalid_api_key", "message": "Invalid API key"}
            return JSONResponse({"detail": detail}, status_code=401)
        return None

    async def with_timestamps(self, request: Request) -> Response:
        if (denied := self._refused(request)) is not None:
            return denied
        voice = self.backend_voice(request.path_params["voice_id"])
        if voice is None:
            detail = {"status": "voice_not_found", "message": "Voice not found"}
            return JSONResponse({"detail": detail}, status_code=404)
        if request.query_params.get("output_format") != "pcm_24000":
            return JSONResponse({"detail": "unsupported output_format"}, status_code=422)
        body = await request.json()
        text = body["text"]
        self.texts.append(text)
        speed = float((body.get("voice_settings") or {}).get("speed", 1.0))
        pcm = await self.synthesize(text, voice, speed)
        chars = self.timings(text, len(pcm))
        step = max(1, round(self.chunk_s * RATE))

        async def lines() -> AsyncIterator[bytes]:
            for start in range(0, len(pcm), step):
                t0, t1 = start / RATE, (start + step) / RATE
                last = start + step >= len(pcm)
                mine = [c for c in chars if t0 <= c.start_s < t1 or (last and c.start_s >= t1)]
                line = {
                    "audio_base64": base64.b64encode(pcm16(pcm[start : start + step])).decode(),
                    "alignment": {
                        "characters": [c.char for c in mine],
                        "character_start_times_seconds": [round(c.start_s, 3) for c in mine],
                        "character_end_times_seconds": [round(c.end_s, 3) for c in mine],
                    },
                    "normalized_alignment": None,
                }
                yield json.dumps(line).encode() + b"\n"

        return StreamingResponse(lines(), media_type="application/json")

    async def list_voices(self, request: Request) -> Response:
        if (denied := self._refused(request)) is not None:
            return denied
        voices = [
            {"voice_id": vid, "name": f"Voice {name}", "labels": {"gender": "female"}}
            for vid, name in self.voices.items()
        ]
        return JSONResponse({"voices": voices})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", self.stream_input),
                Route(
                    "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
                    self.with_timestamps,
                    methods=["POST"],
                ),
                Route("/v1/voices", self.list_voices),
            ]
        )


def _ws_alignment(chars: list[TimedChar], origin_s: float) -> dict[str, Any]:
    return {
        "chars": [c.char for c in chars],
        "charStartTimesMs": [round((c.start_s - origin_s) * 1000) for c in chars],
        "charDurationsMs": [max(1, round((c.end_s - c.start_s) * 1000)) for c in chars],
    }
