"""ElevenLabs: the stream-input WebSocket, with the HTTP streaming endpoint as a fallback.

WebSocket (``transport = "websocket"``), one connection per request:
``{ws base}/v1/text-to-speech/{voice_id}/stream-input?model_id=...&output_format=pcm_24000``.
The client sends the opening message (``text: " "``, ``voice_settings``, optional
``generation_config``, and the key as ``xi-api-key``), the text, a ``flush``, and the end of
input (``text: ""``); the server answers with messages holding base64 PCM (24 kHz s16le) in
``audio`` and the timing of the characters it speaks in ``alignment`` (the text as sent) or
``normalizedAlignment``, then ``isFinal: true``, and closes. A close without ``isFinal`` is a
cut stream: an error, never silently short audio.

HTTP (``transport = "http"``, or automatically when the WebSocket handshake is refused for a
reason other than the key or a rate limit, with ``http_fallback``):
``POST {base}/v1/text-to-speech/{voice_id}/stream/with-timestamps?output_format=pcm_24000``,
whose body is one JSON object per line with ``audio_base64`` and ``alignment``
(``characters``, ``character_start_times_seconds``, ``character_end_times_seconds``).

Character timings become word timings anchored to the request text (:mod:`gateway.core.
char_alignment`). ElevenLabs documents the WebSocket timings as relative to each chunk. Whether
a stream's timings are relative or from its start is decided once, on its first timings after
some audio: times nearer the audio received so far than zero are read as absolute.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any, Final

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from gateway.audio.pcmstream import Pcm16Reader
from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, Voice, WordTiming
from gateway.backends.remote import (
    SAMPLE_RATE,
    RemoteBackend,
    RemoteError,
    Service,
    TextPart,
    classify_status,
    connect_error,
    get_json,
    keyed_service,
    language_tag,
    stream_http,
)
from gateway.backends.settings import ElevenLabsSettings, ElevenLabsTransport
from gateway.core.char_alignment import CharAligner

__all__ = ["ElevenLabsBackend"]

log = logging.getLogger(__name__)
# The websockets library logs frames and handshake headers at DEBUG; the opening message and
# headers carry the API key, so its logger for these connections never goes below INFO.
_socket_log = logging.getLogger(f"{__name__}.socket")
_socket_log.setLevel(logging.INFO)

OUTPUT_FORMAT: Final = "pcm_24000"
SPEED_RANGE: Final = (0.7, 1.2)  # ElevenLabs' documented voice_settings.speed range
_CLOSE_TIMEOUT_S: Final = 1.0
_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
_RETRYABLE_CLOSES: Final = frozenset({1006, 1011, 1012, 1013, 1014})


class _WebSocketUnavailable(Exception):
    """The WebSocket cannot be used here (the handshake was refused); HTTP may work."""


class ElevenLabsBackend(RemoteBackend):
    """ElevenLabs text to speech with native word timings."""

    provider = "ElevenLabs"
    native_word_timing = True

    def __init__(self, name: str, settings: ElevenLabsSettings) -> None:
        service = keyed_service(name, "ElevenLabs", settings)
        super().__init__(name, settings, service, default_voice=settings.default_voice)
        self.settings = settings
        self.model = settings.billed_model
        self.use_http = settings.transport is ElevenLabsTransport.HTTP
        voices = dict.fromkeys([settings.default_voice, *settings.voices])
        self._voices = [Voice(v, v) for v in voices]
        scheme, rest = settings.base_url.split("://", 1)
        self.ws_base = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"

    def _headers(self) -> dict[str, str]:
        return {"xi-api-key": self.service.api_key} if self.service.api_key else {}

    # -- start-up ------------------------------------------------------------------------------

    async def load(self) -> None:
        if self.settings.list_voices:
            try:
                listed = await self._list_voices()
            except RemoteError as error:
                if error.status in (401, 403):
                    raise
                log.warning(
                    "%s: cannot list voices (%s); using the configured ones", self.name, error
                )
            else:
                known = {v.id for v in listed}
                configured = [v for v in self._voices if v.id not in known]
                self._voices = listed + configured
        self._ready = True

    async def _list_voices(self) -> list[Voice]:
        body = await get_json(
            self.client,
            self.service,
            f"{self.settings.base_url}/v1/voices",
            headers=self._headers(),
            timeout_s=self.settings.first_byte_timeout_s,
        )
        voices = []
        for entry in body.get("voices", []) if isinstance(body, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("voice_id"), str):
                labels = entry.get("labels")
                labels = labels if isinstance(labels, dict) else {}
                voices.append(
                    Voice(
                        entry["voice_id"],
                        str(entry.get("name") or entry["voice_id"]),
                        labels.get("language") if isinstance(labels.get("language"), str) else None,
                        labels.get("gender") if isinstance(labels.get("gender"), str) else None,
                    )
                )
        return voices

    # -- synthesis -----------------------------------------------------------------------------

    def _check(self, request: SynthesisRequest) -> None:
        super()._check(request)
        low, high = SPEED_RANGE
        if not low <= request.speed <= high:
            raise BackendError(
                f"{self.name}: speed {request.speed:g} is outside ElevenLabs' range "
                f"{low:g} to {high:g}"
            )

    def _voice_settings(self, request: SynthesisRequest) -> dict[str, Any]:
        return {
            "stability": self.settings.stability,
            "similarity_boost": self.settings.similarity_boost,
            "style": self.settings.style,
            "use_speaker_boost": self.settings.use_speaker_boost,
            "speed": request.speed,
        }

    def _query(self, request: SynthesisRequest, *, websocket: bool) -> str:
        query = {"output_format": OUTPUT_FORMAT}
        if websocket:
            query["model_id"] = self.settings.model
        if self.settings.send_language and websocket:
            query["language_code"] = language_tag(request.lang)
        return urllib.parse.urlencode(query)

    async def _attempt(
        self, request: SynthesisRequest, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        text = request.text[part.start : part.end]
        if not self.use_http:
            try:
                async with contextlib.aclosing(self._websocket(request, text, part)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                return
            except _WebSocketUnavailable as exc:
                if not self.settings.http_fallback:
                    raise RemoteError(
                        f"ElevenLabs WebSocket at {self.ws_base} refused the connection ({exc}); "
                        "set http_fallback = true or transport = 'http'"
                    ) from None
                log.warning("%s: WebSocket unavailable (%s); using HTTP streaming", self.name, exc)
                self.use_http = True
        async with contextlib.aclosing(self._http(request, text, part)) as chunks:
            async for chunk in chunks:
                yield chunk

    # -- WebSocket -----------------------------------------------------------------------------

    async def _open(self, url: str) -> ClientConnection:
        try:
            return await connect(
                url,
                open_timeout=self.settings.connect_timeout_s,
                close_timeout=_CLOSE_TIMEOUT_S,
                max_size=_MAX_MESSAGE_BYTES,
                compression=None,
                ping_interval=None,
                proxy=None,
                user_agent_header="tts-gateway",
                logger=_socket_log,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403, 408, 429) or status >= 500:
                raise classify_status(
                    self.service,
                    status,
                    bytes(exc.response.body or b""),
                    exc.response.headers.get("retry-after"),
                ) from None
            raise _WebSocketUnavailable(f"HTTP {status}") from None
        except (InvalidURI, InvalidHandshake) as exc:
            raise _WebSocketUnavailable(str(exc) or type(exc).__name__) from None
        except (OSError, TimeoutError) as exc:
            raise connect_error(self.service, exc) from None

    def _opening_message(self, request: SynthesisRequest) -> dict[str, Any]:
        message: dict[str, Any] = {"text": " ", "voice_settings": self._voice_settings(request)}
        if self.settings.chunk_length_schedule:
            message["generation_config"] = {
                "chunk_length_schedule": list(self.settings.chunk_length_schedule)
            }
        if self.service.api_key:
            message["xi-api-key"] = self.service.api_key
        return message

    async def _websocket(
        self, request: SynthesisRequest, text: str, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        voice = urllib.parse.quote(request.voice, safe="")
        query = self._query(request, websocket=True)
        url = f"{self.ws_base}/v1/text-to-speech/{voice}/stream-input?{query}"
        ws = await self._open(url)
        try:
            timings = _Timings(text, part.start)
            try:
                await ws.send(json.dumps(self._opening_message(request)))
                await ws.send(json.dumps({"text": text.strip() + " ", "flush": True}))
                await ws.send(json.dumps({"text": ""}))
                while True:
                    wait = (
                        self.settings.first_byte_timeout_s
                        if timings.samples == 0
                        else self.settings.read_timeout_s
                    )
                    try:
                        async with asyncio.timeout(wait):
                            raw = await ws.recv()
                    except TimeoutError:
                        raise self._silence_error(timings.samples, wait) from None
                    message = _json_object(raw, self.service)
                    if message.get("isFinal"):
                        break
                    self._raise_for_error_message(message)
                    alignment = message.get("alignment") or message.get("normalizedAlignment")
                    chunk = timings.chunk(
                        message.get("audio"),
                        _alignment_lists(alignment, "chars", "charStartTimesMs", "charDurationsMs"),
                        self.service,
                    )
                    if chunk is not None:
                        self._received(chunk.pcm)
                        yield chunk
            except ConnectionClosed as closed:
                raise self._close_error(closed, timings.samples) from None
            yield timings.final(part)
        finally:
            await ws.close()

    def _silence_error(self, samples: int, wait: float) -> RemoteError:
        if samples == 0:
            return RemoteError(f"ElevenLabs ({self.ws_base}) sent no audio within {wait:g} s")
        return RemoteError(
            f"ElevenLabs ({self.ws_base}) stalled: no audio for {wait:g} s mid-stream"
        )

    def _raise_for_error_message(self, message: dict[str, Any]) -> None:
        error = message.get("error")
        if error is None or message.get("audio"):
            return
        text = self.service.redact(str(message.get("message") or error))[:300]
        raise self._policy_error(f"{error}: {text}" if text != str(error) else text)

    def _policy_error(self, reason: str) -> RemoteError:
        lowered = reason.lower()
        where = f"ElevenLabs ({self.ws_base})"
        if "quota" in lowered:
            return RemoteError(f"{where} quota is exhausted: {reason}")
        if any(word in lowered for word in ("api key", "api_key", "unauthorized", "authenticat")):
            if self.service.api_key:
                hint = f"the API key from {self.service.key_source} was refused; check it"
            else:
                hint = f"no API key is configured; {self.service.key_hint}"
            return RemoteError(f"{where} rejected the request: {reason} ({hint})", status=401)
        return RemoteError(f"{where} ended the stream: {reason}")

    def _close_error(self, closed: ConnectionClosed, samples: int) -> RemoteError:
        frame = closed.rcvd
        code = frame.code if frame is not None else 1006
        reason = self.service.redact(frame.reason if frame is not None else "")[:300]
        if code == 1008:
            return self._policy_error(reason or "policy violation")
        cut = "after part of the audio" if samples else "before any audio"
        return RemoteError(
            f"ElevenLabs ({self.ws_base}) closed the stream {cut} (code {code}"
            f"{': ' + reason if reason else ''})",
            retryable=code in _RETRYABLE_CLOSES or (code == 1000 and samples == 0),
        )

    # -- HTTP ----------------------------------------------------------------------------------

    async def _http(
        self, request: SynthesisRequest, text: str, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        voice = urllib.parse.quote(request.voice, safe="")
        body: dict[str, Any] = {
            "text": text.strip(),
            "model_id": self.settings.model,
            "voice_settings": self._voice_settings(request),
        }
        if self.settings.send_language:
            body["language_code"] = language_tag(request.lang)
        http_request = self.client.build_request(
            "POST",
            f"{self.settings.base_url}/v1/text-to-speech/{voice}/stream/with-timestamps"
            f"?{self._query(request, websocket=False)}",
            json=body,
            headers=self._headers(),
        )
        timings = _Timings(text, part.start)
        buffer = b""
        async with contextlib.aclosing(
            stream_http(
                self.client,
                http_request,
                self.service,
                first_byte_timeout_s=self.settings.first_byte_timeout_s,
                read_timeout_s=self.settings.read_timeout_s,
            )
        ) as stream:
            async for data in stream:
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    chunk = self._http_line(line, timings)
                    if chunk is not None:
                        self._received(chunk.pcm)
                        yield chunk
        chunk = self._http_line(buffer, timings)
        if chunk is not None:
            self._received(chunk.pcm)
            yield chunk
        if timings.samples == 0:
            raise RemoteError(f"ElevenLabs ({self.settings.base_url}) sent no audio")
        yield timings.final(part)

    def _http_line(self, line: bytes, timings: _Timings) -> AudioChunk | None:
        if not line.strip():
            return None
        message = _json_object(line, self.service)
        alignment = message.get("alignment") or message.get("normalized_alignment")
        return timings.chunk(
            message.get("audio_base64"),
            _alignment_lists(
                alignment,
                "characters",
                "character_start_times_seconds",
                "character_end_times_seconds",
                seconds=True,
            ),
            self.service,
        )


class _Timings:
    """The audio and word timings of one attempt, message by message."""

    def __init__(self, text: str, offset: int) -> None:
        self._aligner = CharAligner(text, offset=offset, sample_rate=SAMPLE_RATE)
        self._pcm = Pcm16Reader()
        self._held: list[WordTiming] = []  # timed words that came without audio
        self._absolute: bool | None = None  # timings from the stream's start, not the chunk's
        self.samples = 0

    def chunk(
        self,
        audio: Any,
        alignment: tuple[list[str], list[float], list[float]] | None,
        service: Service,
    ) -> AudioChunk | None:
        before = self.samples
        pcm = None
        if isinstance(audio, str) and audio:
            try:
                pcm = self._pcm.feed(base64.b64decode(audio, validate=True))
            except (binascii.Error, ValueError):
                raise RemoteError(f"{service.provider} sent audio that is not base64") from None
            self.samples += len(pcm)
        words: list[WordTiming] = []
        if alignment is not None and alignment[0]:
            chars, starts, ends = alignment
            if self._absolute is None and before > 0:
                # Decided once per stream, on the first timings after some audio: times that
                # start nearer the audio received so far than zero are from the stream's start.
                self._absolute = min(starts) > before / SAMPLE_RATE / 2
            base = 0 if self._absolute else before
            words = self._aligner.feed(chars, starts, ends, base_sample=base)
        if pcm is None or not len(pcm):
            self._held.extend(words)  # timings without audio wait for the next chunk
            return None
        words, self._held = [*self._held, *words], []
        return AudioChunk(pcm, words=tuple(words))

    def final(self, part: TextPart) -> AudioChunk:
        try:
            self._pcm.finish()
        except ValueError as exc:
            raise RemoteError(f"ElevenLabs cut the audio short: {exc}") from None
        words, self._held = [*self._held, *self._aligner.finish(self.samples)], []
        return AudioChunk(np.zeros(0, np.float32), piece_end=part.boundary, words=tuple(words))


def _alignment_lists(
    alignment: Any, chars_key: str, starts_key: str, third_key: str, *, seconds: bool = False
) -> tuple[list[str], list[float], list[float]] | None:
    """(chars, start seconds, end seconds) from an alignment object, or None if malformed."""
    if not isinstance(alignment, dict):
        return None
    chars, starts, third = (alignment.get(k) for k in (chars_key, starts_key, third_key))
    if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(third, list)):
        return None
    if not (len(chars) == len(starts) == len(third)):
        return None
    try:
        start_values = [float(v) for v in starts]
        third_values = [float(v) for v in third]
    except (TypeError, ValueError):
        return None
    if seconds:  # HTTP: start and end times in seconds
        return [str(c) for c in chars], start_values, third_values
    # WebSocket: start times and durations in milliseconds
    start_s = [v / 1000 for v in start_values]
    end_s = [(s + d) / 1000 for s, d in zip(start_values, third_values, strict=True)]
    return [str(c) for c in chars], start_s, end_s


def _json_object(raw: str | bytes, service: Service) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        raise RemoteError(f"{service.provider} sent a message that is not JSON") from None
    if not isinstance(message, dict):
        raise RemoteError(f"{service.provider} sent a JSON message that is not an object")
    return message
