"""A minimal ElevenLabs WebSocket client for the tests, written from ElevenLabs' API reference
alone (docs/elevenlabs.md describes what the gateway serves): JSON messages in, audio messages
with ``alignment`` and ``normalizedAlignment``, ``isFinal`` per context, errors.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import RunningServer, timeout


@dataclass
class Received:
    """What arrived for one context (or for the single stream: key None)."""

    audio: bytearray = field(default_factory=bytearray)
    messages: list[dict[str, Any]] = field(default_factory=list)
    finals: int = 0
    audio_after_final: int = 0

    def chars(self, key: str = "alignment") -> str:
        return "".join(c for m in self.messages if m.get(key) for c in m[key]["chars"])

    def alignments(self, key: str = "alignment") -> list[dict[str, Any]]:
        return [m[key] for m in self.messages if m.get(key)]


class XiClient:
    """One socket; everything it receives is sorted by ``contextId``."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.contexts: dict[str | None, Received] = {}
        self.errors: list[dict[str, Any]] = []
        self.close_code: int | None = None

    def of(self, context_id: str | None = None) -> Received:
        return self.contexts.setdefault(context_id, Received())

    async def send(self, **body: Any) -> None:
        await self.socket.send(json.dumps(body))

    async def read_until(self, done: Callable[[XiClient], bool], *, deadline_s: float = 60) -> None:
        """Read messages until ``done`` holds or the socket closes (TimeoutError after the
        deadline)."""
        async with asyncio.timeout(timeout(deadline_s)):
            while not done(self) and self.close_code is None:
                try:
                    frame = await self.socket.recv()
                except ConnectionClosed as closed:
                    self.close_code = closed.rcvd.code if closed.rcvd else 1006
                    return
                assert isinstance(frame, str), "the server sends JSON text frames"
                self._add(json.loads(frame))

    def _add(self, message: dict[str, Any]) -> None:
        if "error" in message:
            self.errors.append(message)
            return
        received = self.of(message.get("contextId"))
        if message.get("isFinal"):
            received.finals += 1
            return
        audio = base64.b64decode(message.get("audio") or "")
        if received.finals:
            received.audio_after_final += len(audio)
        received.audio += audio
        received.messages.append(message)


def xi_url(server: RunningServer, voice: str, endpoint: str = "multi-stream-input",
           **params: str) -> str:  # fmt: skip
    query = urllib.parse.urlencode(params)
    return f"ws://127.0.0.1:{server.port}/v1/text-to-speech/{voice}/{endpoint}?{query}"


@asynccontextmanager
async def xi_connect(url: str, **options: Any) -> AsyncIterator[XiClient]:
    async with connect(url, max_size=16 * 2**20, open_timeout=timeout(30), **options) as socket:
        yield XiClient(socket)
