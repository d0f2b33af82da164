# ruff: noqa: PT017 - fuzzing checks every error that escapes, inside the loop
"""Fuzzing the pure core: the message decoder and the session state machine.

Thousands of generated inputs; the only exceptions allowed out are the documented
ProtocolErrors, and the books of characters always balance.
"""

from __future__ import annotations

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.protocol import ErrorCode, ProtocolError, decode_client_message
from gateway.core.segmenter import SegmenterConfig
from gateway.core.session import FlushMark, Session, SpeakSegment

FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = ["type", "text", "id", "position", "backend", "voice", "lang", "speed", "format",
          "bitrate", "frame_ms", "sample_rate", "short_first_segment", "token"]  # fmt: skip
TYPES = ["start", "text", "flush", "cancel", "end", "auth", "bogus"]
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={name: values | st.sampled_from(TYPES) for name in FIELDS[1:]},
)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_errors(frame: bytes) -> None:
    try:
        decode_client_message(frame)
    except ProtocolError as error:
        assert error.code in ErrorCode
        assert error.message


@FUZZ
@given(values | messages)
def test_random_msgpack_values_only_raise_protocol_errors(value: object) -> None:
    try:
        frame = msgpack.packb(value)
    except (TypeError, ValueError, OverflowError):
        return  # not representable in msgpack: nothing a client could send
    try:
        decode_client_message(frame)
    except ProtocolError as error:
        assert error.code in ErrorCode


operations = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.none()),
        st.tuples(st.just("text"), st.text(max_size=40)),
        st.tuples(st.just("flush"), st.integers(0, 3)),
        st.tuples(st.just("cancel"), st.integers(0, 10**6)),
        st.tuples(st.just("end"), st.none()),
        st.tuples(st.just("idle"), st.none()),
        st.tuples(st.just("work"), st.booleans()),
    ),
    max_size=50,
)


@FUZZ
@given(operations)
def test_the_session_machine_never_breaks(steps: list[tuple[str, object]]) -> None:
    session = Session(SegmenterConfig(), max_pending_chars=120, max_pending_flushes=3,
                      max_heard_chars=50)  # fmt: skip
    for step, argument in steps:
        try:
            match step:
                case "begin":
                    session.begin()
                case "text":
                    session.accept_text(str(argument))
                case "flush":
                    session.request_flush(argument)  # type: ignore[arg-type]
                case "cancel":
                    outcome = session.cancel(int(argument))  # type: ignore[call-overload]
                    assert outcome.unspoken_start <= outcome.unspoken_end == session.received
                    heard = outcome.heard
                    assert heard.heard_start <= heard.cut <= session.received
                case "end":
                    session.request_end()
                case "idle":
                    session.release_idle()
                case "work":
                    item = session.next_work()
                    if isinstance(item, SpeakSegment):
                        session.segment_finished(item, spoken=bool(argument))
                    elif isinstance(item, FlushMark):
                        session.flush_answered(item)
        except ProtocolError as error:  # the documented refusals, nothing else
            assert error.code in {
                ErrorCode.NOT_STARTED,
                ErrorCode.ALREADY_STARTED,
                ErrorCode.ENDED,
                ErrorCode.PENDING_TEXT_LIMIT,
            }
        spoken, unspoken = session.chars_spoken, session.chars_unspoken
        assert spoken + unspoken + session.pending_chars == session.received
        assert session.pending_chars <= 120
