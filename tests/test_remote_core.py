"""The I/O-free parts of the remote backends: retry policy, error classification, text splitting,
audio decoding of network chunks, and provider character timings -> word timings."""

from __future__ import annotations

import io
import random
import struct
import wave
from collections.abc import AsyncGenerator, Callable

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audio.pcmstream import AudioFormatError, Pcm16Reader, WavReader
from gateway.audio.resample import StreamResampler
from gateway.backends.remote import (
    ChunkCoalescer,
    RemoteError,
    RetryPolicy,
    Service,
    classify_status,
    connect_error,
    parse_retry_after,
    retrying,
)
from gateway.core.char_alignment import CharAligner, word_spans
from gateway.core.segmenter import Boundary, TextPart
from gateway.speech.chunking import split_to_limit as split_text
from tests.servers import drain_into

SERVICE = Service(
    "openai", "OpenAI", "https://api.example", "sk-live-abcdef123456", "$KEY", "set KEY"
)


# -- retry policy ------------------------------------------------------------------------------


def test_backoff_grows_exponentially_within_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=4.0)
    rng = random.Random(7)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(d is not None and cap / 2 <= d <= cap for d in delays), attempt
        assert max(d for d in delays if d is not None) - min(d for d in delays if d) > cap / 10
    assert policy.delay(10, None, rng) is None  # the last attempt failed: give up


def test_retry_after_is_honoured_up_to_the_limit() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_after_s=30.0)
    rng = random.Random(1)
    delay = policy.delay(1, 12.0, rng)
    assert delay is not None
    assert 12.0 <= delay <= 13.2
    assert policy.delay(1, 31.0, rng) is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-4") == 0.0
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now=now) == pytest.approx(20.0)


def test_auth_errors_name_the_key_source_and_never_show_the_key() -> None:
    body = (
        b'{"error": {"message": "Incorrect API key provided: sk-live-abcdef123456.", '
        b'"code": "invalid_api_key"}}'
    )
    error = classify_status(SERVICE, 401, body, None)
    assert not error.retryable
    assert "sk-live-abcdef123456" not in str(error)
    assert "[redacted]" in str(error)
    assert "the API key from $KEY was refused" in str(error)
    keyless = Service("openai", "OpenAI", "https://api.example", "", "", "set OPENAI_API_KEY")
    error = classify_status(keyless, 403, b"forbidden", None)
    assert "no API key is configured; set OPENAI_API_KEY" in str(error)
    assert "HTTP 403: forbidden" in str(error)


QUOTA = b'{"error": {"message": "no credit", "code": "insufficient_quota"}}'
ELEVEN_QUOTA = b'{"detail": {"status": "quota_exceeded", "message": "0 credits left"}}'


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "retryable", "text"),
    [
        (429, b'{"error": {"message": "Rate limit reached"}}', "2", True, "rate limiting"),
        (429, QUOTA, None, False, "quota is exhausted"),
        (401, ELEVEN_QUOTA, None, False, "quota is exhausted"),
        (500, b"Internal Server Error", None, True, "HTTP 500: Internal Server Error"),
        (503, b"", "1", True, "failed with HTTP 503"),
        (408, b"", None, True, "HTTP 408"),
        (400, b'{"error": "Invalid value: Unsupported voice"}', None, False, "HTTP 400: Invalid"),
        (422, b'{"detail": [{"msg": "field required"}]}', None, False, "HTTP 422: field required"),
    ],
)
def test_status_classification(
    status: int, body: bytes, retry_after: str | None, retryable: bool, text: str
) -> None:
    error = classify_status(SERVICE, status, body, retry_after)
    assert error.retryable is retryable
    assert error.status == status
    assert text in str(error)
    if retry_after is not None and retryable:
        assert error.retry_after_s == float(retry_after)


def test_connection_failures_say_where() -> None:
    timed_out = connect_error(SERVICE, httpx.ConnectTimeout("timed out"))
    assert str(timed_out) == "timed out connecting to OpenAI at https://api.example"
    assert not timed_out.retryable
    alltalk = Service("alltalk_gpu", "AllTalk", "http://10.0.0.5:7851")
    refused = connect_error(alltalk, ConnectionRefusedError(111, "Connection refused"))
    assert str(refused).startswith("AllTalk is not running at http://10.0.0.5:7851 (")


async def _no_sleep(_: float) -> None:
    return None


async def test_retrying_repeats_failures_before_the_first_item_only() -> None:
    calls: list[int] = []

    def attempt() -> AsyncGenerator[int, None]:
        async def run() -> AsyncGenerator[int, None]:
            calls.append(len(calls))
            if len(calls) < 3:
                raise RemoteError("busy", retryable=True)
            yield 1
            yield 2

        return run()

    policy = RetryPolicy(max_attempts=3)
    items = [i async for i in retrying(attempt, policy, what="t", sleep=_no_sleep)]
    assert items == [1, 2]
    assert len(calls) == 3

    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    def cut_after_one() -> AsyncGenerator[int, None]:
        async def run() -> AsyncGenerator[int, None]:
            calls.append(len(calls))
            yield 1
            raise RemoteError("cut", retryable=True)

        return run()

    calls.clear()
    received: list[int] = []
    with pytest.raises(RemoteError, match="cut"):
        await drain_into(received, retrying(cut_after_one, policy, what="t", sleep=record))
    assert received == [1]  # never duplicated by a retry
    assert len(calls) == 1
    assert waits == []


def failing(error: RemoteError) -> Callable[[], AsyncGenerator[int, None]]:
    """An attempt that fails with ``error`` before yielding anything."""

    def attempt() -> AsyncGenerator[int, None]:
        async def run() -> AsyncGenerator[int, None]:
            nothing: list[int] = []
            for item in nothing:
                yield item
            raise error

        return run()

    return attempt


async def test_retrying_gives_up_with_a_clear_message() -> None:
    busy = failing(RemoteError("HTTP 503", retryable=True))
    with pytest.raises(RemoteError, match=r"HTTP 503 \(gave up after 2 attempts\)"):
        await drain_into([], retrying(busy, RetryPolicy(max_attempts=2), what="t", sleep=_no_sleep))
    too_long = failing(RemoteError("HTTP 429", retryable=True, retry_after_s=600))
    with pytest.raises(RemoteError, match="asks to retry after 600 s"):
        await drain_into([], retrying(too_long, RetryPolicy(), what="t", sleep=_no_sleep))


# -- text splitting ----------------------------------------------------------------------------


def test_split_keeps_short_text_whole_and_drops_blank() -> None:
    assert split_text("Hello there.", 100) == [_part(0, 12, Boundary.SENTENCE)]
    assert split_text("Hello, there", 100)[0].boundary is Boundary.WORD
    assert split_text("   ", 100) == []


def _part(start: int, end: int, boundary: Boundary) -> object:
    return TextPart(start, end, boundary)


def test_split_groups_sentences_up_to_the_limit() -> None:
    text = "One sentence here. Another one follows. A third one, longer than the others. End."
    parts = split_text(text, 40)
    assert [text[p.start : p.end] for p in parts] == [
        "One sentence here. Another one follows.",
        " A third one, longer than the others.",
        " End.",
    ]
    assert all(p.boundary is Boundary.SENTENCE for p in parts)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("abc de.,!?\n"), min_size=0, max_size=400),
    st.integers(min_value=16, max_value=120),
)
def test_split_covers_the_text_within_the_limit(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    covered = "".join(text[p.start : p.end] for p in parts)
    assert covered.split() == text.split()  # nothing but whitespace is left out
    for part in parts:
        assert part.end - part.start <= limit
        assert text[part.start : part.end].strip()
    assert [p.start for p in parts] == sorted(p.start for p in parts)


# -- audio from network chunks -------------------------------------------------------------------


def _wav(pcm: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        if width == 2:
            wav.writeframes((pcm * 32767).astype("<i2").tobytes())
        else:  # 24-bit
            ints = (pcm * 8388607).astype("<i4")
            wav.writeframes(b"".join(struct.pack("<i", int(v))[:3] for v in ints))
    return out.getvalue()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=40))
def test_wav_reader_decodes_any_chunking(cuts: list[int]) -> None:
    pcm = np.sin(np.arange(1500) / 7).astype(np.float32) * 0.5
    data = _wav(pcm, 22050)
    reader, out, pos = WavReader(), [], 0
    for size in cuts * (len(data) // sum(cuts) + 1):
        out.append(reader.feed(data[pos : pos + size]))
        pos += size
        if pos >= len(data):
            break
    reader.finish()
    decoded = np.concatenate(out)
    assert reader.sample_rate == 22050
    assert np.allclose(decoded, pcm, atol=1e-4)


def test_wav_reader_stereo_and_24_bit() -> None:
    pcm = np.linspace(-0.5, 0.5, 300).astype(np.float32)
    stereo = np.repeat(pcm, 2)
    reader = WavReader()
    decoded = reader.feed(_wav(stereo, 16000, channels=2))
    reader.finish()
    assert reader.channels == 2
    assert np.allclose(decoded, pcm, atol=1e-4)
    reader = WavReader()
    decoded = reader.feed(_wav(pcm, 24000, width=3))
    reader.finish()
    assert np.allclose(decoded, pcm, atol=1e-5)


def test_wav_reader_detects_a_cut_stream_and_garbage() -> None:
    data = _wav(np.zeros(1000, np.float32), 24000)
    reader = WavReader()
    reader.feed(data[:-101])
    with pytest.raises(AudioFormatError, match="101 bytes short"):
        reader.finish()
    with pytest.raises(AudioFormatError, match="not a WAV"):
        WavReader().feed(b"ID3\x04" + bytes(40))
    short = WavReader()
    short.feed(data[:20])
    with pytest.raises(AudioFormatError, match="before its header"):
        short.finish()


def test_pcm16_reader_carries_odd_bytes_and_detects_a_half_sample() -> None:
    samples = (np.arange(-50, 50) * 300).astype("<i2").tobytes()
    reader = Pcm16Reader()
    out = [reader.feed(samples[i : i + 7]) for i in range(0, len(samples), 7)]
    reader.finish()
    assert np.allclose(np.concatenate(out) * 32768, np.arange(-50, 50) * 300)
    reader.feed(b"\x01\x02\x03")
    with pytest.raises(AudioFormatError, match="middle of a 16-bit sample"):
        reader.finish()


def test_resampler_keeps_duration() -> None:
    resampler = StreamResampler(22050, 24000)
    pcm = np.sin(np.arange(22050) / 5).astype(np.float32)
    out = np.concatenate([resampler.push(p) for p in np.array_split(pcm, 9)] + [resampler.flush()])
    assert abs(len(out) - 24000) <= 32


def test_coalescer_joins_small_pieces() -> None:
    coalescer = ChunkCoalescer(min_samples=100)
    assert coalescer.push(np.ones(60, np.float32)) is None
    joined = coalescer.push(np.ones(60, np.float32))
    assert joined is not None
    assert len(joined) == 120
    assert coalescer.push(np.ones(10, np.float32)) is None
    rest = coalescer.flush(np.ones(5, np.float32))
    assert rest is not None
    assert len(rest) == 15
    assert coalescer.drain() is None


# -- character timings -> words ----------------------------------------------------------------


def test_word_spans_strip_punctuation() -> None:
    text = 'Hello, "world" -- it\'s 5.5% ok...'
    assert [text[s:e] for s, e in word_spans(text)] == ["Hello", "world", "it's", "5.5%", "ok"]


def _timed(text: str, char_s: float = 0.1) -> tuple[list[str], list[float], list[float]]:
    return (
        list(text),
        [i * char_s for i in range(len(text))],
        [(i + 1) * char_s for i in range(len(text))],
    )


def test_words_are_anchored_to_the_request_text_with_an_offset() -> None:
    text = "Hi there, you."
    aligner = CharAligner(text, offset=100, sample_rate=1000)
    chars, starts, ends = _timed(text + " ")
    words = aligner.feed(chars[:6], starts[:6], ends[:6])
    assert [(w.char_start, w.char_end) for w in words] == [(100, 102)]  # "there" is not complete
    words += aligner.feed(
        chars[6:], [s - 0.6 for s in starts[6:]], [e - 0.6 for e in ends[6:]], base_sample=600
    )
    words += aligner.finish(1500)
    assert [text[w.char_start - 100 : w.char_end - 100] for w in words] == ["Hi", "there", "you"]
    assert [(w.sample_start, w.sample_end) for w in words] == [(0, 200), (300, 800), (1000, 1300)]


def test_a_repeated_pass_is_not_timed_twice() -> None:
    text = "one two three four"
    aligner = CharAligner(text, sample_rate=1000)
    chars, starts, ends = _timed(text)
    first = aligner.feed(chars[:8], starts[:8], ends[:8])
    # The provider re-sends a fuller alignment from the start (other times for the characters
    # it had sent), then goes on: the characters timed already keep their first timing.
    first += aligner.feed(chars[:10], [9.0] * 8 + starts[8:10], [9.5] * 8 + ends[8:10])
    first += aligner.feed(chars[8:], starts[8:], ends[8:])
    first += aligner.finish(2000)
    assert [(text[w.char_start : w.char_end], w.sample_start) for w in first] == [
        ("one", 0), ("two", 400), ("three", 800), ("four", 1400),
    ]  # fmt: skip


def test_words_the_provider_rewrote_get_the_gap_between_their_neighbours() -> None:
    text = "It costs $5 today"
    aligner = CharAligner(text, sample_rate=1000)
    spoken = "It costs five dollars today"
    chars, starts, ends = _timed(spoken)
    words = aligner.feed(chars, starts, ends) + aligner.finish(3000)
    timed = {text[w.char_start : w.char_end]: (w.sample_start, w.sample_end) for w in words}
    assert list(timed) == ["It", "costs", "$5", "today"]
    assert timed["costs"][1] <= timed["$5"][0] <= timed["$5"][1] <= timed["today"][0]
    assert all(w.sample_start <= w.sample_end for w in words)
    starts_in_order = [w.sample_start for w in words]
    assert starts_in_order == sorted(starts_in_order)


def test_malformed_batches_are_ignored_and_finish_times_every_word() -> None:
    aligner = CharAligner("alpha beta", sample_rate=1000)
    assert aligner.feed(["a", "l"], [0.0], [0.1, 0.2]) == []
    words = aligner.finish(1000)
    assert [(w.char_start, w.char_end) for w in words] == [(0, 5), (6, 10)]
    assert (words[0].sample_start, words[-1].sample_end) == (0, 1000)
