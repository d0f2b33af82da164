"""Kokoro PyTorch backend on this machine: time to first audio and real-time factor.

No Kokoro-82M PyTorch weights can be installed here, so this builds a checkpoint of the real
architecture and size (82 M parameters: the release's config.json values) with random weights,
and sets ``max_dur`` so that the random duration predictor gives about 3 frames (75 ms) per
phoneme, close to real speech. The compute per second of audio is then that of the real model;
the audio itself is noise. Needs the ``torch`` extra. Run:

    python -m bench.kokoro_torch [--device cpu] [--frames-per-phoneme 3]

It prints the figures for the 200-word passage of bench/backends.py: per segment (split by the
gateway's segmenter), the time to the first audio of the first segment, and the real-time
factor (wall time / audio time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.backends import PASSAGE
from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_torch import KokoroTorchBackend
from gateway.backends.settings import KokoroTorchSettings
from gateway.backends.workers import require_module
from gateway.core.segmenter import Segmenter

# The Kokoro-82M v1.0 hyper-parameters (as kokoro-onnx ships them in its config.json).
_ISTFTNET = {
    "upsample_kernel_sizes": [20, 12],
    "upsample_rates": [10, 6],
    "gen_istft_hop_size": 5,
    "gen_istft_n_fft": 20,
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "resblock_kernel_sizes": [3, 7, 11],
    "upsample_initial_channel": 512,
}
_PLBERT = {
    "hidden_size": 768,
    "num_attention_heads": 12,
    "intermediate_size": 2048,
    "max_position_embeddings": 512,
    "num_hidden_layers": 12,
    "dropout": 0.1,
}


def build_checkpoint(directory: Path, frames_per_phoneme: float) -> None:
    """A Kokoro checkpoint directory with random weights of the real architecture."""
    from kokoro_onnx.config import DEFAULT_VOCAB

    torch = require_module("torch", "bench", "torch")
    kmodel = require_module("kokoro.model", "bench", "torch").KModel

    config = {
        "istftnet": _ISTFTNET,
        "dim_in": 64,
        "dropout": 0.2,
        "hidden_dim": 512,
        "max_conv_dim": 512,
        "max_dur": round(2 * frames_per_phoneme),  # random sigmoids average 1/2 per step
        "multispeaker": True,
        "n_layer": 3,
        "n_mels": 80,
        "n_token": 178,
        "style_dim": 128,
        "text_encoder_kernel_size": 5,
        "plbert": _PLBERT,
        "vocab": DEFAULT_VOCAB,
    }
    (directory / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    empty = directory / "empty.pth"
    torch.save({}, empty)
    model = kmodel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty))
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    weights = {part: getattr(model, part).state_dict() for part in parts}
    torch.save(weights, directory / "kokoro-v1_0.pth")
    empty.unlink()
    (directory / "voices").mkdir()
    torch.save(torch.randn(510, 1, 256) * 0.1, directory / "voices" / "af_random.pt")


async def measure(directory: Path, device: str) -> dict[str, float]:
    settings = KokoroTorchSettings(
        checkpoint_dir=str(directory), device=device, default_voice="af_random"
    )
    backend = KokoroTorchBackend("bench", settings)
    started = time.perf_counter()
    await backend.load()  # includes the warm-up pass
    load_s = time.perf_counter() - started
    segmenter = Segmenter()
    segments = [s for s in segmenter.push(PASSAGE) + segmenter.finish() if not s.blank]
    first_audio_s = audio_s = 0.0
    started = time.perf_counter()
    for index, segment in enumerate(segments):
        request = SynthesisRequest(segment.text, "af_random", "en-us", 1.0)
        async for chunk in backend.synthesize(request):
            if index == 0 and not first_audio_s:
                first_audio_s = time.perf_counter() - started
            audio_s += len(chunk.pcm) / backend.sample_rate
    wall_s = time.perf_counter() - started
    await backend.aclose()
    return {
        "load_s": load_s,
        "segments": len(segments),
        "first_audio_s": first_audio_s,
        "audio_s": audio_s,
        "wall_s": wall_s,
        "rtf": wall_s / audio_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames-per-phoneme", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        build_checkpoint(directory, args.frames_per_phoneme)
        result = asyncio.run(measure(directory, args.device))
    print(f"kokoro_torch on {args.device}, random weights of the real size, ", end="")
    print(f"{len(PASSAGE.split())}-word passage in {result['segments']:.0f} segments")
    print(f"load and warm-up:          {result['load_s']:.2f} s")
    print(f"time to first audio:       {1000 * result['first_audio_s']:.0f} ms (first segment)")
    print(f"audio / wall:              {result['audio_s']:.1f} s / {result['wall_s']:.1f} s")
    print(f"real-time factor:          {result['rtf']:.3f}")


if __name__ == "__main__":
    main()
