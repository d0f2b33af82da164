"""OpenAI's speech endpoint, or any server that speaks it (``POST {base_url}/v1/audio/speech``).

Audio is requested as ``response_format: "pcm"`` (raw 24 kHz signed 16-bit little-endian mono)
and streamed as it arrives. ``instructions`` (the request's, else the configured ones) are sent
to models that take them (not tts-1 or tts-1-hd). The API key comes from ``api_key`` or the
environment variable ``api_key_env`` (``OPENAI_API_KEY``); without one, no Authorization header
is sent (local servers need none).
Text longer than ``max_input_chars`` (OpenAI: 4096) goes out as several requests, cut at
sentence, then clause, then word boundaries.

A server that answers with WAV instead of raw PCM (some OpenAI-compatible servers ignore
``pcm``) is read as WAV; any other content type is an error rather than noise.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, Voice
from gateway.backends.remote import (
    RemoteBackend,
    TextPart,
    get_json,
    keyed_service,
)
from gateway.backends.settings import OpenAISettings, takes_instructions

__all__ = ["OpenAIBackend"]

log = logging.getLogger(__name__)


class OpenAIBackend(RemoteBackend):
    """OpenAI text to speech (tts-1, tts-1-hd, gpt-4o-mini-tts) or a compatible server."""

    provider = "OpenAI"

    def __init__(self, name: str, settings: OpenAISettings) -> None:
        service = keyed_service(name, "OpenAI", settings)
        super().__init__(name, settings, service, default_voice=settings.default_voice)
        self.settings = settings
        self.model = settings.billed_model
        self._voices = [Voice(v, v) for v in settings.voices]

    def _headers(self) -> dict[str, str]:
        if self.service.api_key:
            return {"authorization": f"Bearer {self.service.api_key}"}
        return {}

    async def load(self) -> None:
        if not self.service.api_key and "api.openai.com" in self.settings.base_url:
            raise BackendError(f"{self.name}: no API key for OpenAI; {self.service.key_hint}")
        if self.settings.list_voices:
            self._voices = await self._list_voices()
            if self.default_voice not in {v.id for v in self._voices}:
                raise BackendError(
                    f"{self.name}: default_voice {self.default_voice!r} is not offered by "
                    f"{self.settings.base_url} (voices: {', '.join(v.id for v in self._voices)})"
                )
        await self._become_ready()

    async def _list_voices(self) -> list[Voice]:
        """``GET {base_url}/v1/audio/voices?model=...``: a list of names, or of objects with an
        id (servers that serve several models may list only the model's voices)."""
        model = urllib.parse.quote(self.settings.model, safe="")
        body = await get_json(
            self.client,
            self.service,
            f"{self.settings.base_url}/v1/audio/voices?model={model}",
            headers=self._headers(),
            timeout_s=self.settings.first_byte_timeout_s,
        )
        # {"voices": [...]} (Kokoro-FastAPI, AllTalk-like servers) or an OpenAI-style list
        # {"object": "list", "data": [...]} (this gateway's GET /v1/audio/voices).
        entries: Any = body.get("voices", body.get("data")) if isinstance(body, dict) else body
        voices = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, str):
                voices.append(Voice(entry, entry))
            elif isinstance(entry, dict) and isinstance(entry.get("id"), str):
                voices.append(
                    Voice(
                        entry["id"],
                        str(entry.get("name") or entry["id"]),
                        entry.get("language") if isinstance(entry.get("language"), str) else None,
                        entry.get("gender") if isinstance(entry.get("gender"), str) else None,
                    )
                )
        if not voices:
            raise BackendError(
                f"{self.name}: {self.settings.base_url}/v1/audio/voices lists no voices"
            )
        return voices

    def _payload(self, request: SynthesisRequest, text: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.settings.model,
            "input": text,
            "voice": request.voice,
            "response_format": "pcm",
            "speed": request.speed,
        }
        instructions = request.instructions or self.settings.instructions
        if instructions and takes_instructions(self.settings.model):
            payload["instructions"] = instructions
        return payload

    def _attempt(
        self, request: SynthesisRequest, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        text = request.text[part.start : part.end].strip()
        return self._post_for_audio(
            "/v1/audio/speech", self._payload(request, text), wav=False, headers=self._headers()
        )
