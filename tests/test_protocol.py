"""The wire codec: round trips and the validation of every client message."""

from __future__ import annotations

import msgpack
import pytest

from gateway.core.protocol import (
    Audio,
    AudioFormat,
    Cancel,
    Cancelled,
    Done,
    End,
    Error,
    ErrorCode,
    Estimate,
    Estimated,
    Flush,
    Flushed,
    Progress,
    ProtocolError,
    Ready,
    SegmentEnd,
    SegmentStart,
    Start,
    Text,
    decode_client_message,
    decode_server_message,
    encode_client_message,
    encode_server_message,
)

SERVER_MESSAGES = [
    Ready(1, "abc", "kokoro", "jf_alpha", "en-us", 1.0, "opus", 24000, 1, 480, 32000, 156,
          65536, 20000),
    SegmentStart(0, "Hello.", 0, 6, 156, "sentence", "text", 7),
    Audio(3, 1440, b"\x00\x01\xff"),
    SegmentEnd(0, 30000, 12.5),
    Flushed("f1", 30720),
    Flushed(7, 30720, cancelled=True),
    Cancelled(None, 4800, 10, 25, "not spoken yet.", 4000, 8, 0, "Heard it.", " not spoken yet."),
    Error("invalid_field", "start.speed must be ...", fatal=False, ref=None, char_start=1,
          char_end=2),
    Done({"chars_received": 5, "real_time_factor": 0.2, "cost_usd": None}),
    Estimated("e1", "openai", "tts-1", 12, 0.8, 0.00018),
    Estimated(None, "kokoro", None, 12, 0.8, 0.0, "USD"),
    Progress("tick", None, 5, 0, 20.0, 20.0, 0, 150.0, None, 0.001, 5, 0.3, 0.05),
]  # fmt: skip


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: m.TYPE)
def test_server_messages_round_trip(message: object) -> None:
    assert decode_server_message(encode_server_message(message)) == message  # type: ignore[arg-type]


def test_server_message_is_a_map_with_type_first() -> None:
    body = msgpack.unpackb(encode_server_message(Audio(1, 480, b"pk")))
    assert list(body) == ["type", "seq", "sample_start", "data"]
    assert body["data"] == b"pk"


def test_client_ignores_unknown_server_fields() -> None:
    frame = msgpack.packb({"type": "segment_end", "segment": 1, "sample_end": 5,
                           "synthesis_ms": 1.0, "new_field": True})  # fmt: skip
    assert decode_server_message(frame) == SegmentEnd(1, 5, 1.0)


CLIENT_MESSAGES = [
    Start(),
    Start(backend="kokoro", voice="jf_alpha", lang="en-us", speed=1.25,
          format=AudioFormat.PCM16, bitrate=24000, frame_ms=40, sample_rate=24000,
          short_first_segment=False),
    Text("Hello, wörld 😀"),
    Text(""),
    Flush(),
    Flush(3),
    Flush("abc"),
    Cancel(),
    Cancel("barge-1"),
    End(),
    Estimate("Hello."),
    Estimate("Hello.", "e1", "openai", 1.5),
]  # fmt: skip


@pytest.mark.parametrize("message", CLIENT_MESSAGES, ids=lambda m: m.TYPE)
def test_client_messages_round_trip(message: object) -> None:
    assert decode_client_message(encode_client_message(message)) == message  # type: ignore[arg-type]


def _rejected(body: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(msgpack.packb(body))
    return caught.value


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ([1, 2], ErrorCode.INVALID_MESSAGE, "must be a msgpack map"),
        ("start", ErrorCode.INVALID_MESSAGE, "must be a msgpack map"),
        ({"text": "hi"}, ErrorCode.INVALID_MESSAGE, "'type'"),
        ({"type": 5}, ErrorCode.INVALID_MESSAGE, "'type'"),
        ({"type": "speak"}, ErrorCode.UNKNOWN_TYPE, "'speak'"),
        ({"type": "text"}, ErrorCode.INVALID_FIELD, "needs field 'text'"),
        ({"type": "text", "text": 5}, ErrorCode.INVALID_FIELD, "text.text must be a string"),
        ({"type": "text", "text": b"raw"}, ErrorCode.INVALID_FIELD, "text.text must be a string"),
        ({"type": "text", "text": "a", "flush": True}, ErrorCode.INVALID_FIELD, "'flush'"),
        ({"type": "start", "speed": "fast"}, ErrorCode.INVALID_FIELD, "start.speed"),
        ({"type": "start", "speed": 9.0}, ErrorCode.INVALID_FIELD, "between 0.5 and 2"),
        ({"type": "start", "speed": float("nan")}, ErrorCode.INVALID_FIELD, "finite"),
        ({"type": "start", "speed": True}, ErrorCode.INVALID_FIELD, "start.speed"),
        ({"type": "start", "format": "mp3"}, ErrorCode.INVALID_FIELD, "'opus', 'pcm16', 'ulaw'"),
        ({"type": "start", "frame_ms": 25}, ErrorCode.INVALID_FIELD, "10, 20, 40, 60"),
        ({"type": "start", "bitrate": 100}, ErrorCode.INVALID_FIELD, "start.bitrate"),
        ({"type": "start", "voice": ""}, ErrorCode.INVALID_FIELD, "start.voice"),
        ({"type": "start", "vocie": "x"}, ErrorCode.INVALID_FIELD, "'vocie'"),
        ({"type": "start", "short_first_segment": 1}, ErrorCode.INVALID_FIELD, "true or false"),
        ({"type": "flush", "id": 1.5}, ErrorCode.INVALID_FIELD, "flush.id"),
        ({"type": "cancel", "id": [1]}, ErrorCode.INVALID_FIELD, "cancel.id"),
        ({"type": "estimate"}, ErrorCode.INVALID_FIELD, "needs field 'text'"),
        ({"type": "estimate", "text": "a", "speed": 3}, ErrorCode.INVALID_FIELD, "estimate.speed"),
        ({"type": "estimate", "text": "a", "voice": "x"}, ErrorCode.INVALID_FIELD, "'voice'"),
        ({"type": "estimate", "text": "a", "backend": ""}, ErrorCode.INVALID_FIELD, "backend"),
        ({1: "start"}, ErrorCode.INVALID_MESSAGE, "not one valid msgpack"),
    ],
)
def test_invalid_client_messages_name_the_problem(
    body: object, code: ErrorCode, words: str
) -> None:
    error = _rejected(body)
    assert error.code is code
    assert words in error.message
    assert not error.fatal


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"\x92\x01",  # an array cut short
        b"\x81\xa4type\xa5start\x00",  # trailing garbage after a complete value
        bytes(range(256)),
    ],
)
def test_garbage_frames_are_invalid_messages(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame)
    assert caught.value.code is ErrorCode.INVALID_MESSAGE


def test_invalid_utf8_in_a_string_is_reported() -> None:
    frame = b"\x82\xa4type\xa4text\xa4text\xa2\xff\xfe"
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame)
    assert caught.value.code is ErrorCode.INVALID_MESSAGE
    assert "UTF-8" in caught.value.message


def test_error_and_done_defaults() -> None:
    assert Error("x", "y").fatal is False
    assert Done().metrics == {}


def test_progress_from_a_server_without_cost_reads_as_unknown() -> None:
    frame = msgpack.packb({"type": "progress", "event": "tick", "segment": None,
                           "chars_received": 1, "chars_spoken": 0, "audio_sent_ms": 0.0,
                           "audio_buffered_ms": 0.0, "underruns": 0,
                           "time_to_first_audio_ms": None, "real_time_factor": None})  # fmt: skip
    progress = decode_server_message(frame)
    assert isinstance(progress, Progress)
    assert (progress.cost_usd, progress.billed_chars, progress.compute_s) == (None, 0, 0.0)
