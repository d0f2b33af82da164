"""The session state machine, without sockets: legality, ordering, and the books."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.protocol import ErrorCode, ProtocolError
from gateway.core.segmenter import SegmenterConfig
from gateway.core.session import (
    EndMark,
    FlushMark,
    ReleasedBy,
    Session,
    SessionState,
    SpeakSegment,
)


def new_session(max_pending_chars: int = 1000, max_pending_flushes: int = 4) -> Session:
    return Session(
        SegmenterConfig(),
        max_pending_chars=max_pending_chars,
        max_pending_flushes=max_pending_flushes,
    )


def drain(session: Session) -> list[SpeakSegment | FlushMark | EndMark]:
    work = []
    while (item := session.next_work()) is not None:
        work.append(item)
    return work


def speak_all(
    session: Session, *, failing: str | None = None
) -> list[SpeakSegment | FlushMark | EndMark]:
    """Do the work in order, as the speaker does; segments with text ``failing`` fail."""
    work = []
    while (item := session.next_work()) is not None:
        work.append(item)
        if isinstance(item, SpeakSegment):
            session.segment_finished(item, spoken=item.segment.text != failing)
    return work


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda s: s.accept_text("hi"), ErrorCode.NOT_STARTED),
        (lambda s: s.request_flush(None), ErrorCode.NOT_STARTED),
        (lambda s: s.request_end(), ErrorCode.NOT_STARTED),
        (lambda s: s.cancel(0), ErrorCode.NOT_STARTED),
    ],
)
def test_nothing_before_start(action: object, code: ErrorCode) -> None:
    session = new_session()
    with pytest.raises(ProtocolError) as caught:
        action(session)  # type: ignore[operator]
    assert caught.value.code is code
    assert session.state is SessionState.AWAITING_START


def test_start_once_then_text_until_end() -> None:
    session = new_session()
    session.begin()
    with pytest.raises(ProtocolError) as caught:
        session.begin()
    assert caught.value.code is ErrorCode.ALREADY_STARTED
    session.accept_text("Hello there. Bye")
    session.request_end()
    assert session.state is SessionState.ENDING
    with pytest.raises(ProtocolError) as late:
        session.accept_text("more")
    assert late.value.code is ErrorCode.ENDED
    work = speak_all(session)
    assert [type(w).__name__ for w in work] == ["SpeakSegment", "SpeakSegment", "EndMark"]
    first, second = work[0], work[1]
    assert isinstance(first, SpeakSegment)
    assert isinstance(second, SpeakSegment)
    assert (first.segment.text, first.released_by) == ("Hello there.", ReleasedBy.TEXT)
    assert (second.segment.text, second.released_by) == (" Bye", ReleasedBy.END)
    assert (first.index, second.index) == (0, 1)
    assert first.received_chars == 16  # released when " Bye" had arrived with it
    assert session.chars_spoken == 16
    assert session.pending_chars == 0


def test_flush_marks_stay_in_order_with_segments() -> None:
    session = new_session()
    session.begin()
    session.accept_text("one two")
    session.request_flush("a")
    session.accept_text(" three. four")
    session.request_flush("b")
    kinds = [
        w.segment.text if isinstance(w, SpeakSegment) else f"flush:{w.id}"  # type: ignore[union-attr]
        for w in drain(session)
    ]
    assert kinds == ["one two", "flush:a", " three.", " four", "flush:b"]


def test_too_many_pending_flushes_are_refused() -> None:
    session = new_session(max_pending_flushes=2)
    session.begin()
    session.request_flush(1)
    session.request_flush(2)
    with pytest.raises(ProtocolError) as caught:
        session.request_flush(3)
    assert caught.value.code is ErrorCode.PENDING_TEXT_LIMIT
    assert [w.id for w in drain(session)] == [1, 2]  # type: ignore[union-attr]


def test_pending_text_limit_refuses_the_whole_message() -> None:
    session = new_session(max_pending_chars=10)
    session.begin()
    session.accept_text("12345678")
    with pytest.raises(ProtocolError) as caught:
        session.accept_text("abc")
    assert caught.value.code is ErrorCode.PENDING_TEXT_LIMIT
    assert session.received == 8  # none of "abc" was accepted
    session.accept_text("ab")
    assert session.received == 10


def test_spoken_text_frees_room_under_the_limit() -> None:
    session = new_session(max_pending_chars=20)
    session.begin()
    session.accept_text("Short one. Another ")  # 19 characters, one segment released
    with pytest.raises(ProtocolError):
        session.accept_text("sentence.")  # 19 + 9 > 20 while nothing is spoken
    speak_all(session)
    assert session.pending_chars == len(" Another ")
    session.accept_text("sentence.")  # 9 + 9 <= 20 once "Short one." is spoken
    assert session.received == 28


def test_cancel_reports_everything_not_yet_spoken() -> None:
    session = new_session()
    session.begin()
    session.accept_text("First. Second. Third")
    session.request_flush("f")
    first = session.next_work()
    assert isinstance(first, SpeakSegment)
    session.segment_finished(first, spoken=True)
    current = session.next_work()  # " Second." is being spoken
    assert isinstance(current, SpeakSegment)
    outcome = session.cancel(0)
    assert outcome.unspoken_start == len("First.")
    assert outcome.unspoken_text == " Second. Third"
    assert outcome.unspoken_end == session.received
    assert outcome.dropped_flushes == ["f"]
    assert not session.has_work
    session.segment_finished(current, spoken=True)  # late: already settled by the cancel
    assert (session.chars_spoken, session.chars_unspoken) == (6, 14)
    session.accept_text("New turn.")
    session.request_end()
    work = speak_all(session)
    assert isinstance(work[0], SpeakSegment)
    assert work[0].segment.first_in_turn
    assert work[0].segment.start == 20


def test_a_failed_segment_reported_before_a_cancel_is_not_reported_again() -> None:
    session = new_session()
    session.begin()
    session.accept_text("First. Second. Third")
    failed = session.next_work()
    assert isinstance(failed, SpeakSegment)
    session.segment_failed(failed)  # its error (with its range) goes out now...
    outcome = session.cancel(0)  # ...and a cancel lands before the segment is finished
    assert outcome.unspoken_start == len("First.")
    assert outcome.unspoken_text == " Second. Third"
    session.segment_finished(failed, spoken=False)  # late: already settled
    assert (session.chars_spoken, session.chars_unspoken) == (0, 20)


def test_cancel_keeps_a_requested_end() -> None:
    session = new_session()
    session.begin()
    session.accept_text("Some text that will be cut. More")
    session.request_end()
    outcome = session.cancel(0)
    assert outcome.unspoken_text == "Some text that will be cut. More"
    assert drain(session) == [EndMark()]


def test_failed_segment_is_unspoken() -> None:
    session = new_session()
    session.begin()
    session.accept_text("Good. Bad. Good again.")
    session.request_end()
    speak_all(session, failing=" Bad.")
    assert (session.chars_spoken, session.chars_unspoken) == (17, 5)


def test_idle_release_speaks_the_unfinished_sentence() -> None:
    session = new_session()
    session.begin()
    session.accept_text("no punctuation yet")
    assert session.has_pending_text
    assert not session.has_work
    session.release_idle()
    work = drain(session)
    assert isinstance(work[0], SpeakSegment)
    assert (work[0].segment.text, work[0].released_by) == ("no punctuation yet", ReleasedBy.IDLE)
    assert not session.has_pending_text


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(alphabet="ab .,!?\n", max_size=30)),
        st.tuples(st.just("flush"), st.none()),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(st.just("speak"), st.integers(0, 3)),
        st.tuples(st.just("fail"), st.none()),
        st.tuples(st.just("idle"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(OPERATIONS)
def test_every_accepted_character_is_spoken_or_reported(
    operations: list[tuple[str, object]],
) -> None:
    """Random sessions: the books always balance, and a cancel reports exactly the unsettled."""
    session = new_session(max_pending_chars=60)
    session.begin()
    reported = 0
    for operation, argument in operations:
        try:
            match operation:
                case "text":
                    session.accept_text(str(argument))
                case "flush":
                    session.request_flush(None)
                case "cancel":
                    outcome = session.cancel(0)
                    reported += outcome.unspoken_end - outcome.unspoken_start
                case "speak" | "fail":
                    for _ in range(int(argument) if operation == "speak" else 1):  # type: ignore[call-overload]
                        item = session.next_work()
                        if isinstance(item, SpeakSegment):
                            session.segment_finished(item, spoken=operation == "speak")
                case "idle":
                    session.release_idle()
        except ProtocolError as error:
            assert error.code is ErrorCode.PENDING_TEXT_LIMIT  # noqa: PT017 - many steps, one raise
        assert session.chars_spoken + session.chars_unspoken + session.pending_chars == (
            session.received
        )
        assert session.pending_chars <= 60
    session.request_end()
    speak_all(session)
    assert session.pending_chars == 0
    assert session.chars_spoken + session.chars_unspoken == session.received
    assert session.chars_unspoken >= reported


def test_cancel_answers_a_flush_whose_audio_is_being_pushed_out() -> None:
    session = new_session()
    session.begin()
    session.request_flush("taken")
    mark = session.next_work()
    assert mark == FlushMark("taken")
    # The speaker is cancelled before it could answer: the cancel reports the flush.
    assert session.cancel(0).dropped_flushes == ["taken"]
    session.request_flush("answered")
    answered = session.next_work()
    assert isinstance(answered, FlushMark)
    session.flush_answered(answered)
    assert session.cancel(0).dropped_flushes == []


def test_queued_segments_merge_within_the_budget() -> None:
    session = new_session()
    session.begin()
    session.accept_text("First one. Second one. Third one. Fourth one. Fifth")
    first = session.next_work(merge_chars=100)
    assert isinstance(first, SpeakSegment)
    assert first.segment.text == "First one."  # a turn's first segment goes alone
    session.segment_finished(first, spoken=True)
    merged = session.next_work(merge_chars=26)
    assert isinstance(merged, SpeakSegment)
    assert merged.segment.text == " Second one. Third one."  # 23 characters; a third: 35
    assert (merged.segment.start, merged.segment.end) == (10, 33)
    assert merged.index == 1
    session.segment_finished(merged, spoken=True)
    session.request_flush("f")
    rest = session.next_work(merge_chars=1000)
    assert isinstance(rest, SpeakSegment)
    assert rest.segment.text == " Fourth one. Fifth"  # merged up to the flush, not across it
    session.segment_finished(rest, spoken=True)
    assert session.next_work(merge_chars=1000) == FlushMark("f")
    assert session.chars_spoken == 51
    assert session.next_work(merge_chars=0) is None


def test_a_joined_segment_is_released_by_the_message_that_completed_its_last_part() -> None:
    # docs/protocol.md section 5: the completing message of a segment is the one after which
    # the received count equals `received_chars`, so it can never be below `char_end`.
    session = new_session()
    session.begin()
    session.accept_text("First one. Second one. ")  # the space releases "Second one." (23)
    session.accept_text("Third one.")
    session.request_flush("f")
    first = session.next_work(merge_chars=100)
    assert isinstance(first, SpeakSegment)
    session.segment_finished(first, spoken=True)
    joined = session.next_work(merge_chars=100)
    assert isinstance(joined, SpeakSegment)
    assert joined.segment.text == " Second one. Third one."  # joined up to the flush
    assert joined.received_chars >= joined.segment.end
    assert (joined.received_chars, joined.released_by) == (33, ReleasedBy.FLUSH)
