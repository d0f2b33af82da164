"""The ElevenLabs socket's writer: frames queued back to back go out together, in order, and a
client that stops reading is given up on after the send deadline. The WebSocket is a stand-in
that records (or, to inject the fault, never completes) what is sent."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from starlette.websockets import WebSocket

from gateway.audio.framing import Frame
from gateway.server.elevenlabs_outbox import Closed, SocketOutbox
from tests.conftest import timeout


class Recorder:
    """Records text frames; ``stuck``: a send never completes (a client that does not read)."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed_with: tuple[int, str] | None = None
        self._stuck = stuck

    async def send_text(self, data: str) -> None:
        if self._stuck:
            await asyncio.Event().wait()
        self.sent.append(json.loads(data))

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


class Source:
    """A context as the writer sees it: a message per run of frames, naming their seqs."""

    def __init__(self, name: str, max_frames: int) -> None:
        self.name = name
        self.max_frames = max_frames
        self.aborted = False

    def render(self, frames: list[Frame]) -> dict[str, Any] | None:
        return {"context": self.name, "seqs": [frame.seq for frame in frames]}

    def finish(self) -> list[dict[str, Any]]:
        return [{"context": self.name, "isFinal": True}]


def frame(seq: int) -> Frame:
    return Frame(seq, seq * 480, bytes(960))


def outbox_on(socket: Recorder, send_timeout_s: float = 5.0) -> SocketOutbox:
    return SocketOutbox(cast(WebSocket, socket), send_timeout_s=send_timeout_s)


async def test_queued_frames_go_out_together_in_order_up_to_a_message() -> None:
    socket = Recorder()
    outbox = outbox_on(socket)
    a, b = Source("a", max_frames=3), Source("b", max_frames=10)
    for seq in range(5):
        await outbox.audio(a, frame(seq))
    await outbox.audio(b, frame(0))
    await outbox.audio(a, frame(5))
    b.aborted = True  # its queued frame is dropped
    await outbox.finish(a)
    await outbox.close(1000, "done")
    await asyncio.wait_for(outbox.run(), timeout(5))
    assert socket.sent == [
        {"context": "a", "seqs": [0, 1, 2]},
        {"context": "a", "seqs": [3, 4]},
        {"context": "a", "seqs": [5]},
        {"context": "a", "isFinal": True},
    ]
    assert socket.closed_with == (1000, "done")
    with pytest.raises(Closed):
        await outbox.message({"late": True})


async def test_a_client_that_stops_reading_is_given_up_on() -> None:
    outbox = outbox_on(Recorder(stuck=True), send_timeout_s=0.2)
    await outbox.message({"error": "x"})
    with pytest.raises(Closed):
        await asyncio.wait_for(outbox.run(), timeout(5))
    assert outbox.given_up
    assert outbox.closed
