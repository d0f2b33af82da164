"""The PyTorch backends behind a real gateway on loopback, with stand-in models.

The models are the stand-ins of ``tests.fakes_torch`` (no Kokoro .pth or Chatterbox weights can
be installed here); the gateway, the WebSocket, segmentation, seams and the Opus encoder are
real. Checks that their chunks flow through the session like any backend's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gateway.backends.chatterbox import ChatterboxBackend
from gateway.backends.kokoro_torch import KokoroTorchBackend
from gateway.backends.settings import KokoroTorchSettings
from gateway.core.protocol import AudioFormat, Done
from tests.conftest import repo_config, serve, timeout
from tests.fakes_torch import write_kokoro_checkpoint
from tests.streams import check_segments_cover, check_timeline, collect, errors
from tests.test_chatterbox import Engines, settings_for
from tests.test_kokoro_torch import Models
from tts_gateway_client import connect

TEXT = "Two backends on PyTorch. Each streams through the gateway, like any other."


async def test_both_stream_through_the_gateway(tmp_path: Path) -> None:
    kokoro = KokoroTorchBackend(
        "kokoro_torch",
        KokoroTorchSettings(checkpoint_dir=str(write_kokoro_checkpoint(tmp_path / "k"))),
        model_factory=Models(),
    )
    chatterbox = ChatterboxBackend(
        "chatterbox", settings_for(tmp_path / "c", warmup=True), engine_factory=Engines()
    )
    running = await serve(repo_config(), {"kokoro_torch": kokoro, "chatterbox": chatterbox})
    try:
        for name in ("kokoro_torch", "chatterbox"):
            async with connect(running.ws_url, backend=name, format=AudioFormat.PCM16) as stream:
                assert stream.ready.backend == name
                stream.feed([TEXT])
                transcript = await collect(stream, until=Done, deadline_s=timeout(60))
            assert not errors(transcript), errors(transcript)
            check_timeline(transcript)
            check_segments_cover(transcript.segments, TEXT)
            pcm = transcript.pcm()
            assert np.sqrt(np.mean(pcm**2)) > 0.05  # the stand-ins' tones came through
            done = transcript.done
            assert done is not None
    finally:
        await running.stop()
        await kokoro.aclose()
        await chatterbox.aclose()
