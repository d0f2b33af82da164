"""The SSML subset, as it streams in: masks, readings, breaks, rates, errors, fuzzing."""
# ruff: noqa: RUF001 - phoneme strings are IPA on purpose

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.errors import ErrorCode, ProtocolError
from gateway.core.reading import ReadingRules, read
from gateway.core.segmenter import SegmenterConfig
from gateway.core.session import Session, SpeakSegment
from gateway.core.ssml import MarkupScanner
from gateway.core.ssml_say_as import say_as
from gateway.core.textnorm import Phonemes
from gateway.speech.chunking import MarkedCalls

DOCUMENT = (
    '<speak>Hi <break time="1s"/>there, <sub alias="World Wide Web">WWW</sub> and '
    '<say-as interpret-as="date" format="dmy">12/05/2024</say-as>. '
    '<prosody rate="slow">Slow <emphasis level="strong">now</emphasis></prosody> AT&amp;T '
    '<phoneme alphabet="ipa" ph="wˈɪn">Nguyen</phoneme>.</speak>'
)


def scanned(text: str) -> tuple[MarkupScanner, str]:
    scanner = MarkupScanner()
    mask = scanner.feed(text)
    scanner.finish()
    return scanner, mask


def test_markup_is_blanked_and_offsets_stay_on_the_client_text() -> None:
    scanner, mask = scanned(DOCUMENT)
    assert len(mask) == len(DOCUMENT)
    markup = scanner.markup(0, len(DOCUMENT), DOCUMENT)
    assert len(markup.plain) == len(DOCUMENT)
    assert (
        " ".join(markup.plain.split()) == "Hi there, WWW and 12/05/2024 . Slow now AT& T Nguyen ."
    )
    read_as = read(markup.plain, "en-us", ReadingRules(fixed=markup.readings)).text
    assert read_as == (
        "Hi there, World Wide Web and the twelfth of May twenty twenty-four. Slow now AT&T Nguyen."
    )
    # The segmenter never cuts inside an element that reads its content as a whole.
    www = DOCUMENT.index("WWW")
    assert mask[www : www + 3] == "xxx"
    assert "<" not in mask
    assert ">" not in mask


def test_readings_breaks_and_rates() -> None:
    scanner, _ = scanned(DOCUMENT)
    markup = scanner.markup(0, len(DOCUMENT), DOCUMENT)
    readings = {DOCUMENT[r.start : r.end]: r for r in markup.readings if r.kind != "markup"}
    assert readings["WWW"].spoken == "World Wide Web"
    assert readings["12/05/2024"].spoken == "the twelfth of May twenty twenty-four"
    assert readings["Nguyen"].phonemes == Phonemes(ipa="wˈɪn")
    assert markup.breaks == ((DOCUMENT.index("there"), 1000.0),)
    now = DOCUMENT.index("now")
    assert markup.rate_at(now) == pytest.approx(0.75 * 0.8)  # nested: slow, strong emphasis
    assert markup.rate_at(DOCUMENT.index("Slow")) == 0.75
    assert markup.rate_at(DOCUMENT.index("AT&")) == 1.0
    assert DOCUMENT.index("there") in markup.cuts()


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("Hello <foo>x</foo>", 6, "<foo> is not supported"),
        ("A & B", 2, "'&' that starts no entity"),
        ("x <break time='20s'/>", 2, "at most 10 s"),
        ("<sub>x</sub>", 0, "needs an 'alias'"),
        ("ok</prosody>", 2, "does not close an open element"),
        ('<prosody rate="slow">x</emphasis>', 22, "(</prosody>)"),
        ('<prosody rate="5">x</prosody>', 0, "between 50% and 200%"),
        ('<say-as interpret-as="spell">x</say-as>', 0, "interpret-as> must be one of"),
        ('<sub alias="a"><break/></sub>', 15, "holds text only"),
        ("3 > 2", 2, "'>' outside a tag"),
        ('<break time="1s" loud="yes"/>', 0, "has no attribute 'loud'"),
        ("&bogus;", 0, "unknown entity"),
        ('<phoneme ph="x" alphabet="sampa">y</phoneme>', 0, "'ipa' or 'x-espeak'"),
    ],
)
def test_malformed_markup_names_the_position(text: str, position: int, message: str) -> None:
    error = refusal(text)
    assert error is not None
    assert error.code is ErrorCode.INVALID_SSML
    assert f"at character {position}:" in error.message
    assert message in error.message


def refusal(text: str, scanner: MarkupScanner | None = None) -> ProtocolError | None:
    """The error reading ``text`` to its end raises, if any."""
    scanner = scanner or MarkupScanner()
    try:
        scanner.feed(text)
        scanner.finish()
    except ProtocolError as error:
        return error
    return None


def test_an_unfinished_tag_at_the_end_is_an_error_and_a_refused_fragment_changes_nothing() -> None:
    scanner = MarkupScanner()
    scanner.feed("Hello <break ti")
    with pytest.raises(ProtocolError, match="at character 6: the tag"):
        scanner.finish()
    with pytest.raises(ProtocolError):
        scanner.feed("me=1s/>")  # unquoted: refused, the tag is still open
    assert scanner.feed('me="1s"/> there') == "          there"
    scanner.finish()


def test_offsets_in_errors_count_the_whole_session() -> None:
    scanner = MarkupScanner()
    scanner.feed("0123456789")
    with pytest.raises(ProtocolError, match="at character 12:"):
        scanner.feed("ab<nope/>")


@pytest.mark.parametrize(
    ("kind", "content", "date_format", "spoken"),
    [
        ("characters", "ABC123", "", "A-B-C one two three"),
        ("cardinal", "1,234", "", "one thousand two hundred thirty-four"),
        ("ordinal", "21", "", "twenty-first"),
        ("ordinal", "3rd", "", "third"),
        ("date", "2024-12-05", "ymd", "December fifth twenty twenty-four"),
        ("date", "05/12/2024", "dmy", "the fifth of December twenty twenty-four"),
        ("date", "12/5", "mdy", "December fifth"),
        ("telephone", "+1 555 123 4567", "", "plus, one, five five five, one two three, "
                                             "four five six seven"),
        ("cardinal", "twelve", "", "twelve"),  # not a number: read as the normalizer reads it
    ],
)  # fmt: skip
def test_say_as(kind: str, content: str, date_format: str, spoken: str) -> None:
    assert say_as(kind, content, date_format) == spoken


# -- in a session -------------------------------------------------------------------------------


def session() -> Session:
    s = Session(SegmenterConfig(), max_pending_chars=10_000, max_pending_flushes=8)
    s.begin(SegmenterConfig(short_first_segment=False), ssml=True)
    return s


def segments(s: Session) -> list[SpeakSegment]:
    found = []
    while (work := s.next_work()) is not None:
        if isinstance(work, SpeakSegment):
            found.append(work)
            s.segment_finished(work, spoken=True)
    return found


def test_segments_carry_the_client_text_and_their_markup() -> None:
    s = session()
    text = 'First <break time="300ms"/>one. <prosody rate="fast">Second one. Third</prosody>.'
    for cut in range(0, len(text), 7):  # fragments cut anywhere, inside tags too
        s.accept_text(text[cut : cut + 7])
    s.request_end()
    found = segments(s)
    assert "".join(w.segment.text for w in found) == text
    first = found[0].segment
    assert first.text == 'First <break time="300ms"/>one.'
    s2 = session()
    s2.accept_text(text)
    work = s2.next_work()
    assert isinstance(work, SpeakSegment)
    markup = s2.markup(work.segment)
    assert markup is not None
    assert markup.breaks == ((first.text.index("one"), 300.0),)


def test_a_refused_text_is_not_accepted() -> None:
    s = session()
    s.accept_text("Fine. ")
    with pytest.raises(ProtocolError) as raised:
        s.accept_text("Not <fine>")
    assert raised.value.code is ErrorCode.INVALID_SSML
    assert s.received == 6
    s.accept_text("Fine again.")
    s.request_end()
    assert "".join(w.segment.text for w in segments(s)) == "Fine. Fine again."


def test_end_inside_a_tag_is_refused_and_a_cancel_forgets_the_markup() -> None:
    s = session()
    s.accept_text("Hello <break")
    with pytest.raises(ProtocolError, match="invalid SSML at character 6"):
        s.request_end()
    s.cancel(0)
    s.accept_text("Next.")  # the unfinished tag went with the cancel
    s.request_end()
    assert [w.segment.text for w in segments(s)] == ["Next."]


# -- fuzzing ------------------------------------------------------------------------------------

_PIECES = st.sampled_from([
    "<", ">", "/", "&", ";", "amp", '"', "'", "=", " ", "break", "sub", "prosody", "say-as",
    "alias", "rate", "time", "1s", "slow", "speak", "x", "é", "\n", "</", "/>", "&amp;",
    '<break time="1s"/>', '<sub alias="a">', "</sub>", '<prosody rate="fast">', "</prosody>",
    "<emphasis>", "</emphasis>", '<phoneme ph="a">', "</phoneme>",
])  # fmt: skip


def fed(scanner: MarkupScanner, fragment: str) -> tuple[str, ProtocolError | None]:
    try:
        return scanner.feed(fragment), None
    except ProtocolError as error:
        return "", error


@given(st.lists(_PIECES, max_size=30), st.integers(min_value=1, max_value=7))
def test_fuzz_any_text_is_read_or_refused_with_a_position(pieces: list[str], step: int) -> None:
    text = "".join(pieces)
    scanner = MarkupScanner()
    accepted = ""
    for cut in range(0, len(text), step):
        fragment = text[cut : cut + step]
        mask, error = fed(scanner, fragment)
        if error is not None:
            assert error.code is ErrorCode.INVALID_SSML
            assert "at character " in error.message
            continue
        assert len(mask) == len(fragment)
        accepted += fragment
    markup = scanner.markup(0, len(accepted), accepted)
    assert len(markup.plain) == len(accepted)
    assert all(0 <= r.start < r.end <= len(accepted) for r in markup.readings)
    assert all(0 <= at <= len(accepted) for at, _ in markup.breaks)


@given(st.lists(_PIECES, max_size=30), st.integers(min_value=1, max_value=9))
def test_fuzz_how_a_text_is_cut_does_not_change_its_reading(pieces: list[str], step: int) -> None:
    text = "".join(pieces)
    whole = MarkupScanner()
    mask, error = fed(whole, text)
    if error is not None:
        return
    cut = MarkupScanner()
    assert "".join(cut.feed(text[i : i + step]) for i in range(0, len(text), step)) == mask
    assert cut.markup(0, len(text), text) == whole.markup(0, len(text), text)


def test_calls_end_at_breaks_and_rates_never_inside_a_reading() -> None:
    text = (
        'Dial <say-as interpret-as="telephone">555 123 4567</say-as> now<break time="200ms"/>, '
        '<prosody rate="fast">then go</prosody>.'
    )
    scanner, _ = scanned(text)
    markup = scanner.markup(0, len(text), text)
    calls = MarkedCalls(markup)
    phone = text.index("555")
    assert calls.limit(0, phone + 4) == phone  # a word gap inside the number: cut before it
    assert calls.limit(phone, 5) == len("555 123 4567")  # or after it
    brk = text.index(", ")
    assert calls.limit(0, len(text)) == brk  # the break ends the call
    pause = calls.pause_at(brk)
    assert pause is not None
    assert (pause.pause_ms, len(pause.pcm)) == (200.0, 0)
    assert calls.pause_at(brk) is None  # once
    fast = text.index("then")
    options = calls.options(fast, len("then go"))
    assert options.rate == 1.25
    assert calls.options(0, phone + 12).readings[-1].spoken.startswith("five five five")
