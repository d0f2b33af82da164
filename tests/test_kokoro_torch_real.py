"""The Kokoro PyTorch backend on the real PyTorch path: hexgrad's KModel, random weights.

Optional: needs the ``torch`` extra (torch and kokoro), which ``make test`` does not install.
No Kokoro-82M weights can be installed here, so the test builds a checkpoint directory the way
the release lays it out (config.json, kokoro-v1_0.pth, voices/*.pt) from a real ``KModel`` with
random weights and a small text encoder (the decoder is full size). The backend then loads it
through its real loader and runs real forward passes: shapes, rates, durations to word
timings, and cancellation through the layer hooks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_torch import KokoroTorchBackend, TorchKokoroModel
from gateway.backends.settings import KokoroTorchSettings
from gateway.backends.workers import stopping
from tests.conftest import timeout

torch: Any = pytest.importorskip("torch", reason="the torch extra (torch) is not installed")
kokoro_model: Any = pytest.importorskip(
    "kokoro.model", reason="the torch extra (hexgrad's kokoro package) is not installed"
)

pytestmark = [
    pytest.mark.slow,
    # Emitted by hexgrad's kokoro package when it builds KModel (also with the real weights).
    pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm. is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning"),
]


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kokoro_onnx.config import DEFAULT_VOCAB

    directory = tmp_path_factory.mktemp("kokoro-random")
    config = {
        "istftnet": {
            "upsample_kernel_sizes": [20, 12],
            "upsample_rates": [10, 6],
            "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20,
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            "resblock_kernel_sizes": [3, 7, 11],
            "upsample_initial_channel": 512,
        },
        "dim_in": 64,
        "dropout": 0.2,
        "hidden_dim": 512,
        "max_conv_dim": 512,
        "max_dur": 4,  # random weights predict about max_dur / 2 frames per phoneme
        "multispeaker": True,
        "n_layer": 2,
        "n_mels": 80,
        "n_token": 178,
        "style_dim": 128,
        "text_encoder_kernel_size": 5,
        "plbert": {
            "hidden_size": 64,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 512,
            "num_hidden_layers": 1,
            "dropout": 0.1,
        },
        "vocab": DEFAULT_VOCAB,
    }
    (directory / "config.json").write_text(json.dumps(config))
    empty = directory / "empty.pth"
    torch.save({}, empty)
    torch.manual_seed(0)
    model = kokoro_model.KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty))
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    torch.save(
        {part: getattr(model, part).state_dict() for part in parts}, directory / "kokoro-v1_0.pth"
    )
    empty.unlink()
    (directory / "voices").mkdir()
    torch.save(torch.randn(510, 1, 256) * 0.1, directory / "voices" / "af_random.pt")
    return directory


@pytest.fixture(scope="module")
async def backend(checkpoint_dir: Path) -> AsyncIterator[KokoroTorchBackend]:
    settings = KokoroTorchSettings(
        checkpoint_dir=str(checkpoint_dir), device="cpu", default_voice="af_random", warmup=False
    )
    loaded = KokoroTorchBackend("kt", settings)
    async with asyncio.timeout(timeout(120)):
        await loaded.load()
    yield loaded
    await loaded.aclose()


async def test_real_passes_give_audio_and_word_timings(backend: KokoroTorchBackend) -> None:
    assert isinstance(backend._model, TorchKokoroModel)
    assert backend.device == "cpu"
    text = "Hello world, this is the test."
    async with asyncio.timeout(timeout(120)):
        chunks = [
            c async for c in backend.synthesize(SynthesisRequest(text, "af_random", "en-us", 1.0))
        ]
    assert len(chunks) == 1
    pcm = chunks[0].pcm
    assert pcm.dtype == np.float32
    assert pcm.ndim == 1
    assert len(pcm) % 600 == 0  # 600 samples per predicted frame at 24 kHz
    assert np.isfinite(pcm).all()
    words = chunks[0].words
    assert [text[w.char_start : w.char_end] for w in words] == [
        "Hello",
        "world",
        "this",
        "is",
        "the",
        "test",
    ]
    ends = [0] + [w.sample_end for w in words]
    for word, previous_end in zip(words, ends, strict=False):
        assert previous_end <= word.sample_start < word.sample_end <= len(pcm)


async def test_cancel_stops_a_real_pass_at_the_next_layer(backend: KokoroTorchBackend) -> None:
    """A test hook on the decoder waits until the request is stopped; the backend's own layer
    hooks must then end the pass (nothing else would: the hook lets the pass continue)."""
    assert isinstance(backend._model, TorchKokoroModel)
    decoder = backend._model._model.decoder
    entered = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold_until_stopped(_module: Any, _inputs: Any) -> None:
        loop.call_soon_threadsafe(entered.set)
        while not stopping():
            time.sleep(0.005)

    handle = decoder.register_forward_pre_hook(hold_until_stopped)
    try:
        request = SynthesisRequest("A sentence that is stopped.", "af_random", "en-us", 1.0)

        async def consume() -> None:
            async for _ in backend.synthesize(request):
                pass

        before = backend.counters.stopped
        task = asyncio.create_task(consume())
        async with asyncio.timeout(timeout(120)):
            await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert backend.counters.stopped == before + 1
    finally:
        handle.remove()
