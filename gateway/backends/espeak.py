"""espeak-ng through the library bundled by ``espeakng-loader``, driven by ctypes.

Formant synthesis: robot-like, but hundreds of times faster than real time, in 100+ languages,
with exact word timings from espeak's word events. The backend of choice for fast tests and
for languages the neural voices lack.

Engines. espeak-ng keeps its state in process globals (one voice, one callback, one synthesis
at a time), and other libraries in this process drive espeak-ng too: kokoro-onnx phonemizes
through ``phonemizer``, which loads its own temporary copy of the same library, and piper-tts
has its own statically linked espeak-ng. A shared library loaded twice from one path is one
instance, so each engine here loads a *private copy* of ``libespeak-ng.so`` (copied to a
temporary directory, loaded, then unlinked; the mapping stays valid). Engines therefore share
no state with each other or with those libraries. ``max_concurrency`` engines are loaded; each
synthesizes one request at a time, in this backend's thread pool.

Streaming. espeak-ng runs synchronously in a worker thread and hands over audio in 50 ms
buffers through a callback, with word events that carry the 1-based character position in
the text and the sample they start at. The worker puts the chunks on a bounded queue read by
the async generator; when the consumer is ``max_buffered_s`` of audio behind, the worker
waits. Closing the generator makes the callback return 1, which stops espeak-ng at the next
buffer; the generator returns only once the worker has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import math
import shutil
import tempfile
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
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
from gateway.backends.settings import EspeakSettings
from gateway.backends.threads import join
from gateway.backends.wordmap import SpokenText, espeak_phoneme_text, text_boundary

__all__ = ["AUTO_VOICE", "Delivery", "EspeakBackend", "EspeakEngine"]

log = logging.getLogger(__name__)

AUTO_VOICE: Final = "auto"  # the voice of the session's language
CHUNK_MS: Final = 50
_SILENCE: Final = 0.01  # a word's end is its last sample above this level (-40 dBFS)

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_INITIALIZE_DONT_EXIT: Final = 0x8000
_POS_CHARACTER: Final = 1
_CHARS_UTF8: Final = 1
_PHONEMES: Final = 0x100  # espeakPHONEMES: text in [[...]] is espeak phoneme input
_RATE: Final = 1
_PITCH: Final = 3
_WORD_GAP: Final = 7  # espeakWORDGAP: extra pause between words, in espeak-ng's units
_EE_OK: Final = 0
_EVENT_LIST_TERMINATED: Final = 0
_EVENT_WORD: Final = 1
_EVENT_END: Final = 5
_EVENT_MSG_TERMINATED: Final = 6
_GENDERS: Final = {1: "male", 2: "female"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceSpec(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class EspeakEvent:
    """An event of espeak-ng: its type, 1-based character position and sample."""

    type: int
    text_position: int
    sample: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """How espeak-ng speaks: words per minute, base pitch (0-100) and the extra pause between
    words in espeak-ng's units (0: none; at 175 wpm 1 adds about 50 ms, 2 about 60 ms, 10
    about 160 ms; shorter at faster rates)."""

    rate_wpm: int
    pitch: int
    word_gap: int = 0


@dataclass(frozen=True, slots=True)
class EspeakVoice:
    """A voice file of espeak-ng: its identifier and languages (best first)."""

    name: str
    identifier: str
    languages: tuple[tuple[int, str], ...]  # (priority, code); a lower priority is better
    gender: str | None


# Receives each buffer (int16) and its events; returns False to stop synthesis.
AudioSink = Callable[[NDArray[np.int16], list[EspeakEvent]], bool]


def _bundled_library() -> tuple[Path, Path]:
    try:
        import espeakng_loader
    except ModuleNotFoundError:
        raise BackendError(
            "espeak: espeakng-loader is not installed; run `pip install espeakng-loader`"
        ) from None
    return Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())


class EspeakEngine:
    """One private instance of libespeak-ng. Not thread-safe: one synthesis at a time."""

    def __init__(self, library: Path | None = None, data: Path | None = None) -> None:
        bundled_library, bundled_data = _bundled_library()
        library, data = library or bundled_library, data or bundled_data
        self._lib = _load_private_copy(library)
        self._declare()
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, CHUNK_MS, str(data).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise BackendError(f"espeak: cannot initialize espeak-ng with the data in {data}")
        self.sample_rate: int = rate
        self._callback = _SynthCallback(self._on_audio)  # referenced for the library's lifetime
        self._lib.espeak_SetSynthCallback(self._callback)
        self._sink: AudioSink | None = None
        self._error: BaseException | None = None

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_VoiceSpec)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceSpec))
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size in bytes, with the terminating zero
            ctypes.c_uint,  # position
            ctypes.c_int,  # position type
            ctypes.c_uint,  # end position
            ctypes.c_uint,  # flags
            ctypes.POINTER(ctypes.c_uint),  # unique identifier
            ctypes.c_void_p,  # user data
        ]
        lib.espeak_Synth.restype = ctypes.c_int

    def list_voices(self, variants: bool = False) -> list[EspeakVoice]:
        """The voice files (languages), or with ``variants`` the voice variants."""
        spec = _VoiceSpec()
        keep = ctypes.create_string_buffer(b"variant")
        if variants:
            spec.languages = ctypes.cast(keep, ctypes.c_void_p)
        listed = self._lib.espeak_ListVoices(ctypes.byref(spec) if variants else None)
        voices = []
        for i in range(100000):
            if not listed[i]:
                break
            entry = listed[i].contents
            voices.append(
                EspeakVoice(
                    name=(entry.name or b"").decode(),
                    identifier=(entry.identifier or b"").decode(),
                    languages=_languages(entry.languages),
                    gender=_GENDERS.get(entry.gender),
                )
            )
        return voices

    def synthesize(self, text: str, voice: str, delivery: Delivery, sink: AudioSink) -> None:
        """Speak ``text`` with the voice file ``voice`` (``identifier[+variant]``) and
        ``delivery``.

        ``sink`` gets the audio buffer by buffer, with its events; when it returns False (or
        raises) synthesis stops at once. Blocks until done.
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise BackendError(f"espeak: cannot select the voice {voice!r}")
        self._lib.espeak_SetParameter(_RATE, delivery.rate_wpm, 0)
        self._lib.espeak_SetParameter(_PITCH, delivery.pitch, 0)
        self._lib.espeak_SetParameter(_WORD_GAP, delivery.word_gap, 0)
        data = text.encode("utf-8")
        self._sink, self._error = sink, None
        try:
            status = self._lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _PHONEMES, None, None
            )
        finally:
            self._sink = None
        if self._error is not None:
            raise self._error
        if status != _EE_OK:
            raise BackendError(f"espeak: synthesis failed (espeak-ng status {status})")

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        sink = self._sink
        if sink is None:
            return 1
        try:
            pcm = (
                np.ctypeslib.as_array(wav, shape=(count,)).copy()
                if wav and count > 0
                else np.zeros(0, np.int16)
            )
            listed = []
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                event = events[i]
                listed.append(EspeakEvent(event.type, event.text_position, event.sample))
                i += 1
            return 0 if sink(pcm, listed) else 1
        except BaseException as exc:  # an exception must not cross the C boundary
            self._error = exc
            return 1


def _load_private_copy(library: Path) -> ctypes.CDLL:
    directory = tempfile.mkdtemp(prefix="tts-gateway-espeak-")
    try:
        copy = Path(directory) / library.name
        shutil.copyfile(library, copy)
        try:
            return ctypes.CDLL(str(copy))
        except OSError as exc:
            raise BackendError(
                f"espeak: cannot load a copy of {library} from {directory} ({exc}); if the "
                "temporary directory does not allow executables, point TMPDIR elsewhere"
            ) from exc
    finally:
        shutil.rmtree(directory, ignore_errors=True)  # a loaded library stays mapped


def _languages(pointer: int | None) -> tuple[tuple[int, str], ...]:
    """espeak's language list: (priority byte, zero-terminated code) pairs, then a zero byte."""
    languages = []
    address = pointer or 0
    while address:
        priority = ctypes.c_ubyte.from_address(address).value
        if priority == 0:
            break
        code = ctypes.string_at(address + 1)
        languages.append((priority, code.decode()))
        address += len(code) + 2
    return tuple(languages)


class WordTracker:
    """espeak buffers and events -> :class:`AudioChunk` s with words (sans-I/O).

    espeak reports a word event for most words, at the sample it starts; it joins some short
    words to their neighbour ("for a while" gets two events) and reports no event for them. So
    the events are anchors: the stretch from one anchored word's start to the next anchor (the
    next word event, the end of a clause, the end of the text) is shared by the words it
    covers, in proportion to the length of their reading, and each word's end is drawn back
    over trailing silence. Every word of the text is timed, in order. Events that fall in a
    word already started ("42" read as "forty two") extend it. Audio from the start of the
    words still open is held back until they are closed, so every word travels with the chunk
    holding its start. ``origin`` maps positions of the text espeak read to positions of
    ``spoken.spoken`` (they differ where a word is given as phonemes).
    """

    def __init__(self, spoken: SpokenText, origin: list[int] | None = None) -> None:
        self._spoken = spoken
        self._origin = origin
        self._pending = np.zeros(0, np.float32)
        self._pending_start = 0  # sample at which _pending begins
        self._total = 0
        self._open: tuple[int, int] | None = None  # (first open word, its start sample)
        self._next = 0  # the first word not timed yet
        self._closed: list[WordTiming] = []
        self._last_end = 0

    def feed(self, pcm: NDArray[np.int16], events: list[EspeakEvent]) -> AudioChunk | None:
        """One buffer from espeak; returns the audio (and words) that can go out now."""
        self._pending = np.concatenate((self._pending, pcm.astype(np.float32) / 32768.0))
        self._total += len(pcm)
        for event in events:
            if event.type == _EVENT_WORD:
                index = self._word_at(event.text_position - 1)
                if index is None or index < self._next:
                    continue
                if self._open is None and self._next < index:  # words with no event of their own
                    self._open = (self._next, max(self._last_end, self._pending_start))
                self._close(event.sample, before=index)
                self._open = (index, max(event.sample, self._last_end, self._pending_start))
                self._next = index + 1
            elif event.type == _EVENT_END and self._open is not None:
                last = self._word_at(max(0, event.text_position - 2))
                if last is not None:
                    self._close(event.sample, before=max(last + 1, self._next))
        cut = self._open[1] if self._open is not None else self._total
        return self._emit(cut)

    def finish(self, boundary_text: str) -> AudioChunk:
        """The end of synthesis: the rest of the audio, ending the piece."""
        if self._open is None and self._next < len(self._spoken.words):
            self._open = (self._next, max(self._last_end, self._pending_start))
        self._close(self._total, before=len(self._spoken.words))
        chunk = self._emit(self._total) or AudioChunk(np.zeros(0, np.float32))
        return AudioChunk(chunk.pcm, piece_end=text_boundary(boundary_text), words=chunk.words)

    def _word_at(self, position: int) -> int | None:
        if self._origin is not None:
            position = self._origin[max(0, min(position, len(self._origin) - 1))]
        return self._spoken.word_at(position)

    def _close(self, sample: int, *, before: int) -> None:
        """Time the open words up to (not including) word ``before`` over the audio from the
        first one's start to ``sample``."""
        if self._open is None:
            return
        first, start = self._open
        self._open = None
        words = self._spoken.words[first:before]
        self._next = max(self._next, before)
        end = min(max(sample, start + 1), max(self._total, start + 1))
        weights = [max(1, len(word.speak)) for word in words]
        position, total = float(start), sum(weights) or 1
        for index, weight in enumerate(weights, first):
            share = (end - start) * weight / total
            word_start, word_end = (
                round(position),
                max(round(position + share), round(position) + 1),
            )
            position += share
            self._closed.append(self._spoken.timing(index, *self._audible(word_start, word_end)))
        self._last_end = end if not self._closed else self._closed[-1].sample_end

    def _audible(self, start: int, end: int) -> tuple[int, int]:
        """``[start, end)`` with its end drawn back over trailing silence."""
        audio = self._pending[start - self._pending_start : end - self._pending_start]
        loud = np.flatnonzero(np.abs(audio) > _SILENCE)
        return start, (start + int(loud[-1]) + 1) if len(loud) else max(start, end)

    def _emit(self, cut: int) -> AudioChunk | None:
        cut = max(self._pending_start, min(cut, self._total))
        pcm = self._pending[: cut - self._pending_start]
        self._pending = self._pending[cut - self._pending_start :]
        self._pending_start = cut
        words, self._closed = tuple(self._closed), []
        if not len(pcm) and not words:
            return None
        return AudioChunk(np.ascontiguousarray(pcm), words=words)


class _Job:
    """One synthesis: the worker's side of the bridge to the async generator."""

    _END: Final = object()

    def __init__(self, loop: asyncio.AbstractEventLoop, credits: int) -> None:
        self._loop = loop
        self.stop = threading.Event()
        # One credit per espeak buffer on the queue: at most `credits` chunks wait.
        self.credits = threading.Semaphore(credits)
        # Besides those: the last chunk, an error and the end mark.
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=credits + 3)

    def take_credit(self) -> bool:
        """Wait until the consumer has room; False if the job was cancelled meanwhile."""
        if self.stop.is_set():
            return False
        self.credits.acquire()
        return not self.stop.is_set()

    def put(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def end(self) -> None:
        self.put(self._END)

    def cancel(self) -> None:
        self.stop.set()
        self.credits.release()  # wake a worker waiting for room


@dataclass(frozen=True, slots=True)
class _Queued:
    chunk: AudioChunk
    credit: bool  # took a credit, to be given back when the consumer takes the chunk


class EspeakBackend(LocalBackend):
    """espeak-ng. A request is one piece; audio streams in 50 ms buffers with word timings.

    Each of its ``max_concurrency`` engines (a lane) is a private copy of the library; a
    request takes one for as long as its thread synthesizes.
    """

    kind = "espeak"
    languages: tuple[str, ...] = ()
    streams_within_segment = True
    native_word_timing = True

    def __init__(self, name: str, settings: EspeakSettings) -> None:
        super().__init__(name, settings, lanes=settings.max_concurrency)
        self.sample_rate = 22050  # espeak-ng's rate; confirmed by the engines at load
        self._settings = settings
        self._engines: asyncio.Queue[EspeakEngine] = asyncio.Queue(settings.max_concurrency)
        self._identifiers: dict[str, str] = {}  # language code -> voice file identifier
        self._voices: list[Voice] = []
        self._credits = math.ceil(settings.max_buffered_s * 1000 / CHUNK_MS)
        self._jobs: set[_Job] = set()
        self._stats_lock = threading.Lock()

    async def _load(self) -> None:
        engines = [
            await self._models.run_unscheduled(EspeakEngine)
            for _ in range(self._settings.max_concurrency)
        ]
        self.sample_rate = engines[0].sample_rate
        self._catalogue(engines[0])
        for engine in engines:
            self._engines.put_nowait(engine)

    async def _warm_up(self) -> None:
        for _ in range(self._settings.max_concurrency):  # each engine loads its data on first use
            await super()._warm_up()

    def _catalogue(self, engine: EspeakEngine) -> None:
        best: dict[str, tuple[int, EspeakVoice]] = {}
        for voice in engine.list_voices():
            for priority, code in voice.languages:
                code = code.lower()
                if code not in best or priority < best[code][0]:
                    best[code] = (priority, voice)
        self._identifiers = {code: voice.identifier for code, (_, voice) in best.items()}
        self.languages = tuple(sorted(best))
        # One voice per voice file, named by the first of its own codes that selects it, and
        # listing every code that does; sorted by name. Any of those codes is accepted.
        files: dict[str, tuple[EspeakVoice, list[str]]] = {}
        for code, (_, voice) in best.items():
            files.setdefault(voice.identifier, (voice, []))[1].append(code)
        listed = []
        for voice, codes in files.values():
            own = [code.lower() for _, code in voice.languages]
            codes.sort(key=lambda code: own.index(code) if code in own else len(own))
            name = voice.name.strip()
            listed.append(Voice(codes[0], name, codes[0], voice.gender, tuple(sorted(codes))))
        listed.sort(key=lambda v: (v.name.casefold(), v.id))
        self._voices = [Voice(AUTO_VOICE, "the voice of the session's language"), *listed]
        settings = self._settings
        if settings.default_lang not in self._identifiers:
            raise BackendError(
                f"espeak: default_lang {settings.default_lang!r} is not a language of espeak-ng "
                f"(e.g. {', '.join(self.languages[:12])}, ...)"
            )
        if settings.default_voice != AUTO_VOICE and settings.default_voice not in best:
            raise BackendError(
                f"espeak: default_voice {settings.default_voice!r} is neither {AUTO_VOICE!r} nor "
                "a language of espeak-ng"
            )
        variants = {v.identifier.rpartition("/")[2] for v in engine.list_voices(variants=True)}
        if settings.variant and settings.variant not in variants:
            raise BackendError(
                f"espeak: variant {settings.variant!r} is not an espeak-ng voice variant "
                f"(variants: {', '.join(sorted(variants))})"
            )

    async def aclose(self) -> None:
        for job in list(self._jobs):  # a stream never closed must not hold a thread forever
            job.cancel()
        await super().aclose()

    def voices(self) -> list[Voice]:
        return list(self._voices)

    def resolve_voice(self, name: str) -> str:
        if name == AUTO_VOICE or name in self._identifiers:
            return name  # a language code: listed under its voice file's first code
        return listed_voice(self, name)

    def _voice_name(self, request: SynthesisRequest) -> str:
        code = request.lang if request.voice == AUTO_VOICE else request.voice
        identifier = self._identifiers.get(code.lower())
        if identifier is None:
            raise BackendError(f"espeak: no voice for {code!r}")
        variant = self._settings.variant
        return f"{identifier}+{variant}" if variant else identifier

    def _rate_wpm(self, speed: float) -> int:
        return max(80, min(450, round(self._settings.rate_wpm * speed)))

    async def _synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        voice = self._voice_name(request)
        code = request.lang if request.voice == AUTO_VOICE else request.voice
        spoken = SpokenText(request.text, code, request.rules)
        loop = asyncio.get_running_loop()
        engine = await self._engines.get()
        try:
            job = _Job(loop, self._credits)
            worker = self._models.submit(
                functools.partial(
                    self._work, engine, job, spoken, voice, self._rate_wpm(request.speed)
                )
            )
        except BaseException:
            self._engines.put_nowait(engine)
            raise
        # The engine is free as soon as its thread is done, not when this consumer has taken
        # every chunk: a session paced to its listener must not hold it for seconds.
        worker.add_done_callback(lambda _: self._engines.put_nowait(engine))
        self.counters.running += 1
        self._jobs.add(job)
        try:
            while True:
                item = await job.queue.get()
                if item is _Job._END:
                    break
                if isinstance(item, BackendError):
                    raise item
                if isinstance(item, BaseException):
                    raise BackendError(f"espeak: synthesis failed: {item}") from item
                assert isinstance(item, _Queued)
                if item.credit:
                    job.credits.release()
                yield item.chunk
        finally:
            job.cancel()
            try:
                await join(worker)  # the engine is idle before it is reused
            finally:
                self.counters.running -= 1
                self._jobs.discard(job)

    def _work(
        self, engine: EspeakEngine, job: _Job, spoken: SpokenText, voice: str, rate: int
    ) -> None:
        """In a pool thread: synthesize, feeding the job's queue; always ends the queue."""
        text, origin = espeak_phoneme_text(spoken)
        tracker = WordTracker(spoken, origin)

        def sink(pcm: NDArray[np.int16], events: list[EspeakEvent]) -> bool:
            if not job.take_credit():
                return False
            with self._stats_lock:
                self.counters.samples += len(pcm)
            chunk = tracker.feed(pcm, events)
            if chunk is None:
                job.credits.release()
            else:
                job.put(_Queued(chunk, credit=True))
            return True

        try:
            settings = self._settings
            # espeak-ng puts its word gap inside phoneme input too, between syllables ("a
            # [[b@n'an@]]" is heard "her and Anna"): a request with phoneme input goes without.
            gap = 0 if "[[" in text else settings.word_gap
            engine.synthesize(text, voice, Delivery(rate, settings.pitch, gap), sink)
            if not job.stop.is_set():
                job.put(_Queued(tracker.finish(spoken.text), credit=False))
        except BaseException as exc:
            job.put(exc)
        finally:
            job.end()
