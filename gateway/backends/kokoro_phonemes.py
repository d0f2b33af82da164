"""Kokoro's text front end: words -> phonemes -> model passes, with the word of every phoneme.

Shared by the Kokoro backends. Phonemes come from espeak-ng (the library bundled by
``espeakng-loader``, through ``phonemizer``), as the Kokoro v1.0 ONNX export expects. Each pass
fits the model's 510-phoneme window; long texts are cut between words, preferring sentence and
clause ends.

Thread safety: a :class:`KokoroPhonemizer` serializes its espeak calls with a lock (espeak-ng
keeps global state; phonemizer loads a private copy of the library per backend object, so other
espeak users in the process are not affected).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from gateway.backends.base import BackendError, WordTiming
from gateway.core.alignment import SpokenWord, phoneme_owners, spoken_words, word_spans
from gateway.core.reading import DEFAULT_RULES, ReadingRules
from gateway.core.segmenter import Boundary

__all__ = [
    "MAX_PHONEMES",
    "ONSET_REACH",
    "KokoroPhonemizer",
    "ModelPass",
    "PassWords",
    "pass_word_timings",
]

MAX_PHONEMES: Final = 510
_SENTENCE_END: Final = ".!?…"
_CLAUSE_END: Final = ",;:"
_ARTICLE: Final = "ɐ"  # the IPA weak vowel
_SILENCE_FRAME: Final = 240  # 10 ms at 24 kHz
_SILENCE_LEVEL: Final = 10 ** (-45 / 20)  # RMS below -45 dBFS is the pause, not the word
ONSET_REACH: Final = 3600  # 150 ms: how far before a word's start its onset is looked for
_EARLY: Final = 1200  # 50 ms: how early a word starts, in running speech, than its durations say


@dataclass(frozen=True, slots=True)
class ModelPass:
    """One model input: its phonemes (only vocabulary symbols), token ids, and words."""

    phonemes: str
    tokens: list[int]
    words: list[SpokenWord]
    owners: list[int]  # for each phoneme, the index into ``words`` (-1: space)

    @property
    def boundary(self) -> Boundary:
        """The kind of text boundary the pass ends on."""
        last = self.phonemes.rstrip()[-1:]
        if last and last in _SENTENCE_END:
            return Boundary.SENTENCE
        if last and last in _CLAUSE_END:
            return Boundary.CLAUSE
        return Boundary.WORD


class KokoroPhonemizer:
    """Phonemizes text for Kokoro and keeps track of which word each phoneme belongs to."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self._vocab = vocab
        self._lock = threading.Lock()
        self._backends: dict[str, Any] = {}

    def passes(
        self,
        text: str,
        lang: str,
        *,
        align: bool = True,
        rules: ReadingRules = DEFAULT_RULES,
        per_sentence: bool = False,
    ) -> list[ModelPass]:
        """The model passes that speak ``text`` read under ``rules``, in order (empty if
        nothing is speakable). A word with IPA phonemes (lexicon, SSML) is said with them.

        Without ``align`` the words are not phonemized one by one and ``owners`` stay empty
        (cheaper; for a model that reports no durations). With ``per_sentence`` every sentence
        is a pass of its own (a long one is still cut to fit); else as much as fits.
        """
        words = spoken_words(text, lang, rules)
        if not words:
            return []
        if align:
            alone = self._phonemize([word.speak for word in words], lang)
            alone = [self._given(w) or p for w, p in zip(words, alone, strict=True)]
            if lang.startswith("en"):
                # Alone, espeak reads the article "a" as the letter's name; in context it is
                # the weak vowel, which is what the alignment must find.
                alone = [
                    _ARTICLE if _bare(w.speak) == "a" else p
                    for w, p in zip(words, alone, strict=True)
                ]
        else:
            alone = [word.speak for word in words]  # letters estimate the phoneme count
        return [
            self._model_pass(group, alone[a:b] if align else None, lang)
            for a, b, group in _groups(words, alone, per_sentence=per_sentence)
        ]

    def _given(self, word: SpokenWord) -> str:
        """The word's IPA from the lexicon or SSML (only symbols the model knows), or ""."""
        ipa = word.phonemes.ipa if word.phonemes else None
        return self._known(ipa) if ipa else ""

    def _context(self, words: list[SpokenWord], lang: str) -> str:
        """The phonemes of ``words`` read together; runs between words with given phonemes
        are phonemized in context, and the given phonemes put in between."""
        runs: list[list[SpokenWord] | str] = []
        for word in words:
            given = self._given(word)
            if given:
                runs.append(
                    given + "".join(c for c in word.speak[-1:] if c in _CLAUSE_END + _SENTENCE_END)
                )
            elif runs and isinstance(runs[-1], list):
                runs[-1].append(word)
            else:
                runs.append([word])
        texts = [" ".join(w.speak for w in run) for run in runs if isinstance(run, list)]
        said = iter(self._phonemize(texts, lang) if texts else [])
        return " ".join(next(said) if isinstance(run, list) else run for run in runs)

    def _model_pass(self, words: list[SpokenWord], alone: list[str] | None, lang: str) -> ModelPass:
        context = self._context(words, lang)
        if len(context) > MAX_PHONEMES:  # in context, espeak said more than alone: cut hard
            context = context[:MAX_PHONEMES]
        tokens = [self._vocab[char] for char in context]
        owners = phoneme_owners(context, alone) if alone is not None else []
        return ModelPass(context, tokens, words, owners)

    def _phonemize(self, texts: list[str], lang: str) -> list[str]:
        with self._lock:
            backend = self._backends.get(lang)
            if backend is None:
                backend = self._backends[lang] = _espeak(lang)
            phonemized = backend.phonemize(texts, strip=True)
        return [self._known(" ".join(phonemes.split())) for phonemes in phonemized]

    def _known(self, phonemes: str) -> str:
        return "".join(char for char in phonemes if char in self._vocab)


def _bare(word: str) -> str:
    return word.strip(".,;:!?\"'()").lower()


# phonemizer warns on every call whose phonemized word count differs from the text's (numbers,
# punctuation kept as words): expected here, where words are aligned to phonemes separately,
# and at one line per segment it would flood the gateway's log. Its errors still show.
_PHONEMIZER_LOG = logging.getLogger("gateway.backends.kokoro.phonemizer")
_PHONEMIZER_LOG.setLevel(logging.ERROR)


def _espeak(lang: str) -> Any:
    from kokoro_onnx.tokenizer import Tokenizer  # points phonemizer at the bundled espeak-ng
    from phonemizer.backend import EspeakBackend

    Tokenizer()
    try:
        return EspeakBackend(
            lang, preserve_punctuation=True, with_stress=True, logger=_PHONEMIZER_LOG
        )
    except RuntimeError as exc:
        raise BackendError(f"kokoro: espeak-ng cannot phonemize {lang!r}: {exc}") from exc


def _groups(
    words: list[SpokenWord], alone: list[str], *, per_sentence: bool = False
) -> list[tuple[int, int, list[SpokenWord]]]:
    """Cut the words into runs whose phonemes fit one pass, at sentence or clause ends if
    possible (``per_sentence``: also at every sentence end), as ``(first, end, words)``."""
    budget = MAX_PHONEMES - 20  # context phonemes run a little longer than words alone
    groups: list[tuple[int, int, list[SpokenWord]]] = []
    start = 0
    while start < len(words):
        end, size, best = start, 0, None
        while end < len(words) and (size + len(alone[end]) + 1 <= budget or end == start):
            size += len(alone[end]) + 1
            end += 1
            if words[end - 1].speak[-1:] in _SENTENCE_END + _CLAUSE_END:
                best = end
            if per_sentence and words[end - 1].speak[-1:] in _SENTENCE_END:
                break
        if end < len(words) and best is not None and best > start:
            end = best
        groups.append((start, end, words[start:end]))
        start = end
    return groups


def pass_word_timings(
    model_pass: ModelPass, durations: NDArray[np.int64], audio: NDArray[np.float32]
) -> tuple[WordTiming, ...]:
    """Word timings of one pass from the model's per-token durations (pads included), its
    audio whole (see :class:`PassWords`)."""
    return PassWords(model_pass, durations, len(audio)).ready(audio, final=True)


class PassWords:
    """The words of one pass, timed from the model's per-token durations (pads included) as
    the pass's audio arrives (``samples``: its whole length).

    Sample edges are scaled so that the durations cover exactly the audio. The model often
    gives the pause before a comma or full stop to the word's last phoneme (a long, silent
    length mark), so each word's end is drawn back to the end of its audible sound; its start
    moves back to where its sound begins. Both need only the audio up to the word's end, so a
    word is ready as soon as that audio is.
    """

    def __init__(self, model_pass: ModelPass, durations: NDArray[np.int64], samples: int) -> None:
        frames = np.concatenate([[0], np.cumsum(durations)])
        edges = np.round(frames * (samples / frames[-1])).astype(np.int64)
        # Token i of the pass is model input i + 1 (after the leading pad).
        phoneme_edges: Sequence[int] = edges[1 : len(model_pass.phonemes) + 2].tolist()
        self._words = model_pass.words
        self._spans = word_spans(model_pass.phonemes, model_pass.owners, phoneme_edges,
                                 len(model_pass.words))  # fmt: skip
        self._next = 0  # the first word not handed out yet
        self._floor = 0  # where the last word handed out ends

    def audio_end(self, audio: NDArray[np.float32]) -> int:
        """How much of ``audio`` (the pass so far) may be sent now: all of it once every word
        is out; else up to where the next word's sound begins (exactly, once the audio reaches
        its first phoneme; before that, as early as it may begin), so no audio of a word goes
        out before the word does."""
        available = len(audio)
        if self._next >= len(self._words):
            return available
        start = self._spans[self._next].sample_start
        if start <= available:
            return min(available, _audible_start(audio, start, self._floor))
        return min(available, max(self._floor, start - ONSET_REACH))

    def first_start(self) -> int:
        """Where the first word's span begins, in samples of the pass (0 without words)."""
        return self._spans[0].sample_start if self._spans else 0

    def ends(self) -> list[int]:
        """Where each word's span ends, in samples of the pass (in text order)."""
        return [span.sample_end for span in self._spans]

    def ready(self, audio: NDArray[np.float32], *, final: bool = False) -> tuple[WordTiming, ...]:
        """The words not handed out yet whose sound ends within ``audio`` (the pass's audio so
        far; ``final``: all of it, every remaining word)."""
        timings = []
        while self._next < len(self._words):
            span = self._spans[self._next]
            if not final and span.sample_end > len(audio):
                break
            word = self._words[self._next]
            start = _audible_start(audio, span.sample_start, self._floor)
            end = max(start, _audible_end(audio, span.sample_start, span.sample_end))
            timings.append(WordTiming(word.char_start, word.char_end, start, end, word.spoken))
            self._floor = end
            self._next += 1
        return tuple(timings)


def _audible_start(audio: NDArray[np.float32], start: int, floor: int) -> int:
    """``start`` moved back to where the word's sound begins.

    The durations place a word's first phoneme a little late (by about two frames, measured
    against the onsets after pauses): the start moves back to the end of a pause found just
    before it, else by ``_EARLY`` samples, never before the previous word's end (``floor``).
    """
    frame = _SILENCE_FRAME
    position = start
    while position - frame >= max(floor, start - ONSET_REACH):
        window = audio[position - frame : position]
        if float(np.sqrt(np.mean(window * window))) <= _SILENCE_LEVEL:
            return position
        position -= frame
    return max(floor, start - _EARLY)


def _audible_end(audio: NDArray[np.float32], start: int, end: int) -> int:
    """``end`` moved back over the silent 10 ms frames that end the span ``[start, end)``."""
    frame = _SILENCE_FRAME
    while end - frame > start:
        window = audio[end - frame : end]
        if float(np.sqrt(np.mean(window * window))) > _SILENCE_LEVEL:
            break
        end -= frame
    return end
