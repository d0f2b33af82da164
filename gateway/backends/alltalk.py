"""AllTalk v2 (erew123/alltalk_tts) through its OpenAI-compatible speech endpoint.

AllTalk's documented API, as used here:

- ``GET /api/ready`` answers ``Ready`` once its engine is loaded (``Unloaded`` while it is not);
  :meth:`AllTalkBackend.load` polls it for up to ``ready_timeout_s``.
- ``GET /api/voices`` lists the loaded engine's voices (``{"status": "success", "voices": [...]}``).
- ``POST /v1/audio/speech`` takes ``model`` (ignored), ``input``, ``voice``, ``response_format``
  and ``speed``. ``voice`` must be one of the six OpenAI names (alloy, echo, fable, nova, onyx,
  shimmer); AllTalk maps each to an engine voice, per engine. The audio comes back whole after
  synthesis, as WAV at the engine's sample rate (resampled here to 24 kHz when it differs).
- ``PUT /api/openai-voicemap`` sets that mapping (sent at start-up with ``push_voice_map``).

AllTalk's documentation says the OpenAI endpoint takes no language (the engine speaks its loaded
model's language). With ``send_language`` the request carries a ``language`` field anyway, the
extension that AllTalk's other endpoints use (``en``, ``fr``, ...): AllTalk ignores it, forks and
proxies that read it get the session's language. AllTalk caps requests at 2000 characters by
default (``max_input_chars``); longer text goes out as several requests.

Several AllTalk servers can be configured side by side, one ``[backends.alltalk_*]`` table each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, Final

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, Voice
from gateway.backends.remote import (
    RemoteBackend,
    RemoteError,
    Service,
    TextPart,
    get_json,
    language_tag,
)
from gateway.backends.settings import ALLTALK_OPENAI_VOICES, AllTalkSettings

__all__ = ["AllTalkBackend"]

log = logging.getLogger(__name__)

_READY_POLL_S: Final = 0.5


class AllTalkBackend(RemoteBackend):
    """An AllTalk v2 server."""

    provider = "AllTalk"
    streams_within_segment = False  # AllTalk answers once the whole text is synthesized

    def __init__(self, name: str, settings: AllTalkSettings) -> None:
        service = Service(name, "AllTalk", settings.base_url)
        super().__init__(name, settings, service, default_voice=settings.default_voice)
        self.settings = settings
        self._alias = {engine: openai for openai, engine in settings.voice_map.items()}
        self.engine_voices: list[str] = []
        self._voices = self._voice_list()

    def _voice_list(self) -> list[Voice]:
        voices = []
        for openai in ALLTALK_OPENAI_VOICES:
            engine = self.settings.voice_map.get(openai)
            voices.append(Voice(openai, f"{openai} ({engine})" if engine else openai))
        voices.extend(Voice(engine, engine) for engine in sorted(self._alias))
        return voices

    def openai_voice(self, voice: str) -> str:
        """The OpenAI voice name to send for a voice of this backend."""
        if voice in ALLTALK_OPENAI_VOICES:
            return voice
        if voice in self._alias:
            return self._alias[voice]
        raise BackendError(
            f"{self.name}: voice {voice!r} is neither an OpenAI voice name nor mapped in voice_map"
        )

    # -- start-up ------------------------------------------------------------------------------

    async def load(self) -> None:
        await self.wait_ready()
        self.engine_voices = await self._engine_voices()
        if self.engine_voices:
            missing = {
                name: engine
                for name, engine in self.settings.voice_map.items()
                if engine not in self.engine_voices
            }
            if missing:
                name, engine = next(iter(missing.items()))
                raise BackendError(
                    f"{self.name}: voice_map.{name} = {engine!r} is not a voice of the AllTalk "
                    f"server at {self.settings.base_url} (voices: {', '.join(self.engine_voices)})"
                )
        if self.settings.push_voice_map:
            await self._push_voice_map()
        await self._become_ready()

    async def wait_ready(self) -> None:
        """Poll ``/api/ready`` until it says ``Ready``; BackendError after ``ready_timeout_s``."""
        deadline = time.monotonic() + self.settings.ready_timeout_s
        url = f"{self.settings.base_url}/api/ready"
        while True:
            try:
                answer = await get_json(
                    self.client, self.service, url, timeout_s=self.settings.connect_timeout_s
                )
                state = str(answer).strip().strip('"')
                if state == "Ready":
                    return
                reason = f"it reports {state[:40]!r}"
            except RemoteError as error:
                reason = str(error)
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{self.name}: AllTalk at {self.settings.base_url} is not ready after "
                    f"{self.settings.ready_timeout_s:g} s ({reason})"
                )
            await asyncio.sleep(_READY_POLL_S)

    async def _engine_voices(self) -> list[str]:
        body = await get_json(
            self.client,
            self.service,
            f"{self.settings.base_url}/api/voices",
            timeout_s=self.settings.first_byte_timeout_s,
        )
        if isinstance(body, dict) and body.get("status") == "success":
            voices = body.get("voices")
            if isinstance(voices, list):
                return [str(v) for v in voices]
        message = body.get("message") if isinstance(body, dict) else body
        log.warning("%s: AllTalk lists no voices (%s)", self.name, str(message)[:200])
        return []

    async def _push_voice_map(self) -> None:
        url = f"{self.settings.base_url}/api/openai-voicemap"
        try:
            async with asyncio.timeout(self.settings.first_byte_timeout_s):
                response = await self.client.put(url, json=dict(self.settings.voice_map))
        except TimeoutError:
            raise BackendError(f"{self.name}: {url} did not answer") from None
        if response.status_code >= 400:
            raise BackendError(
                f"{self.name}: AllTalk refused the voice map (HTTP {response.status_code}): "
                f"{response.text[:200]}"
            )

    # -- synthesis -----------------------------------------------------------------------------

    def _payload(self, request: SynthesisRequest, text: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": "tts-1",
            "input": text,
            "voice": self.openai_voice(request.voice),
            "response_format": "wav",
            "speed": request.speed,
        }
        if self.settings.send_language:
            payload["language"] = language_tag(request.lang)
        return payload

    def _attempt(
        self, request: SynthesisRequest, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        text = request.text[part.start : part.end].strip()
        return self._post_for_audio(
            "/v1/audio/speech", self._payload(request, text), wav=True, headers={}
        )
