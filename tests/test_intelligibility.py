"""Intelligibility of text dense with dates, times, units, abbreviations and numbers: what
Whisper hears from each local engine, normalized the way the gateway normalizes text (so "5 km"
and "five kilometers" are the same words), against the passage normalized the same way.

The passages hold what engines misread before the gateway normalized text: before it, Whisper's
word error rate on them was 0.33 for espeak-ng, 0.20 for Piper and 0.13 for Kokoro (README, "How
text is read"). ``python -m tests.test_intelligibility`` prints today's.

espeak-ng's errors were acoustic, not misreadings ("Doctor Smith ran" heard as "doctors
mid-range"): a short pause between words (its ``word_gap``, on by default) took its rate from
0.126 to 0.074-0.089.
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.backends.base import Backend, SynthesisRequest
from gateway.core.reading import read
from tests.asr import edit_distance, transcribe, words

PASSAGES = (
    "On 12/05/2024 at 3:30 p.m., Dr. Smith ran 5 km in 25 min., e.g. faster than approx. 90% "
    "of the runners.",
    "It was 72°F outside, and she paid $4.50 for 2 L of water, i.e. about 3/4 of her cash.",
    "Call 555-123-4567 before Jan. 3rd, or write to help@example.com by 9:15 a.m.",
    "From 2019-2021 the team grew from 12 to 48 people, vs. only 10% in 1999.",
    "The 2nd drive holds 3 GB, the file is 250 MB, and the trip was 26.2 mi. on Oct. 14, 2023.",
)
MAX_WER = {"espeak": 0.10, "piper": 0.10, "kokoro": 0.10}
# Piper samples its voice (VITS noise): one rendition of the passages is heard with a word error
# rate anywhere from 0.02 to 0.11, so its rate is pooled over three renditions. espeak-ng's
# fricatives are noise too (no two renditions are the same samples): three as well.
RENDITIONS = {"piper": 3, "espeak": 3}


def normalized_words(text: str) -> list[str]:
    """``text`` as the gateway reads it, in lower-case words; "a m" and "p m" as one word each,
    as Whisper writes them either way ("9:15 AM", "915am")."""
    joined: list[str] = []
    for word in words(read(text, "en-us").text):
        if word == "m" and joined and joined[-1] in ("a", "p"):
            joined[-1] += "m"
        else:
            joined.append(word)
    return joined


async def word_error_rate(backend: Backend) -> tuple[float, list[str]]:
    """The backend's word error rate over all passages (edits over reference words), and what
    Whisper heard."""
    errors = total = 0
    heard = []
    for text in PASSAGES * RENDITIONS.get(backend.name, 1):
        request = SynthesisRequest(text, backend.default_voice, backend.default_lang, 1.0)
        pcm = np.concatenate([chunk.pcm async for chunk in backend.synthesize(request)])
        transcript = transcribe(pcm, backend.sample_rate)
        reference = normalized_words(text)
        errors += edit_distance(reference, normalized_words(transcript))
        total += len(reference)
        heard.append(transcript)
    return errors / total, heard


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The session fixture named by the parameter (a plain fixture: it sets up async ones)."""
    loaded: Backend = request.getfixturevalue(request.param)
    return loaded


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    ["espeak", "piper", pytest.param("kokoro", marks=pytest.mark.model)],
    indirect=True,
)
async def test_dense_text_is_heard_as_written(backend: Backend) -> None:
    wer, heard = await word_error_rate(backend)
    assert wer <= MAX_WER[backend.name], heard


async def _main() -> None:
    from gateway.backends.espeak import EspeakBackend
    from gateway.backends.kokoro_onnx import KokoroOnnxBackend
    from gateway.backends.piper import PiperBackend
    from gateway.backends.settings import EspeakSettings, KokoroOnnxSettings, PiperSettings

    backends: list[tuple[str, Backend]] = [
        ("m1, 150 wpm, as in conftest", EspeakBackend("espeak", EspeakSettings(variant="m1",
                                                                              rate_wpm=150))),
        ("config defaults", EspeakBackend("espeak", EspeakSettings())),
        ("joe", PiperBackend("piper", PiperSettings())),
        ("config defaults", KokoroOnnxBackend("kokoro", KokoroOnnxSettings())),
    ]  # fmt: skip
    for label, backend in backends:
        await backend.load()
        wer, _ = await word_error_rate(backend)
        print(f"{backend.name} ({label}): word error rate {wer:.3f} "
              f"(at most {MAX_WER[backend.name]})")  # fmt: skip
        await backend.aclose()


if __name__ == "__main__":
    import asyncio

    asyncio.run(_main())
