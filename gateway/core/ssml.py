"""An SSML subset, read as it streams in (no I/O).

A session that opts in (``start.ssml``, REST ``"ssml": true``) writes its text as SSML: tags
and entities are markup, never spoken, and every offset stays on the client's characters. The
:class:`MarkupScanner` reads the session text character by character as fragments arrive (a tag
may be cut anywhere), checks it, and returns for each fragment a *mask* of the same length for
the segmenter: tag characters become spaces (a segment may start or end on them, never read
them), the content of ``sub``, ``phoneme`` and ``say-as`` becomes letters (never cut inside).
Malformed markup raises :class:`~gateway.core.errors.ProtocolError` ``invalid_ssml`` naming the
session offset of the character at fault; the scanner is then as it was before the fragment.

Elements (attributes not listed are refused):

- ``speak`` (optional root; ``version``, ``xmlns``, ``xml:lang`` ignored);
- ``break`` (empty): ``time`` (``"500ms"``, ``"1.5s"``, at most 10 s) or ``strength``;
- ``prosody``: ``rate`` (``x-slow`` ... ``x-fast``, a percentage ``"80%"`` or a factor);
- ``emphasis``: ``level`` (``strong``, ``moderate``, ``reduced``, ``none``), read as a rate;
- ``sub``: ``alias``, read instead of the content;
- ``phoneme``: ``ph`` and ``alphabet`` (``ipa`` for Kokoro and Piper, ``x-espeak`` for
  espeak-ng); other engines read the content;
- ``say-as``: ``interpret-as`` = ``characters``, ``cardinal``, ``ordinal``, ``date`` (with
  ``format`` ``mdy``, ``dmy`` or ``ymd``) or ``telephone``.

``sub``, ``phoneme`` and ``say-as`` hold text only. Entities: ``&amp;`` ``&lt;`` ``&gt;``
``&quot;`` ``&apos;`` and numeric ones. :func:`segment_markup` gives, for one segment, its text
with the markup blanked, the readings of its elements, its breaks and its rates.
"""

from __future__ import annotations

import copy
import html
import re
from dataclasses import dataclass, field
from typing import Final

from gateway.core.errors import ErrorCode, ProtocolError
from gateway.core.ssml_say_as import say_as
from gateway.core.textnorm import Phonemes, Replacement

__all__ = ["MarkupScanner", "SegmentMarkup", "segment_markup"]

MAX_TAG_CHARS: Final = 1000
MAX_CONTENT_CHARS: Final = 200  # of sub, phoneme, say-as
MAX_BREAK_MS: Final = 10_000.0
MAX_DEPTH: Final = 32
_NAME: Final = re.compile(r"[A-Za-z][\w:.-]*")
_ATTRIBUTE: Final = re.compile(r"\s*([A-Za-z][\w:.-]*)\s*=\s*(\"[^\"<]*\"|'[^'<]*')")
_ENTITY: Final = re.compile(r"&(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});")
_STRENGTHS: Final = {"none": 0.0, "x-weak": 100.0, "weak": 200.0, "medium": 400.0,
                     "strong": 700.0, "x-strong": 1200.0}  # fmt: skip
_RATES: Final = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25,
                 "x-fast": 1.5}  # fmt: skip
_EMPHASIS: Final = {"strong": 0.8, "moderate": 0.9, "reduced": 1.1, "none": 1.0}
_SAY_AS: Final = ("characters", "cardinal", "ordinal", "date", "telephone")
_ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    "speak": ("version", "xmlns", "xml:lang"),
    "break": ("time", "strength"),
    "prosody": ("rate",),
    "emphasis": ("level",),
    "sub": ("alias",),
    "phoneme": ("ph", "alphabet"),
    "say-as": ("interpret-as", "format", "detail"),
}
_TEXT_ONLY: Final = frozenset({"sub", "phoneme", "say-as"})


@dataclass
class _Open:
    """An element whose end tag has not come yet."""

    name: str
    content_start: int
    attributes: dict[str, str]


@dataclass(frozen=True)
class _Reading:
    """What an element's content reads as: ``kind`` (``sub``, ``phoneme``,
    ``say-as:<interpret-as>:<format>``), a ``sub``'s alias, a ``phoneme``'s phonemes."""

    kind: str
    alias: str = ""
    phonemes: Phonemes | None = None


@dataclass
class _Span:
    """An element's content ``[start, end)`` (``end`` None: still open) and what it does."""

    start: int
    end: int | None
    rate: float = 1.0
    reading: _Reading | None = None


@dataclass
class _State:
    offset: int = 0  # session offset of the next character
    tag_start: int | None = None  # inside a tag or an entity since this offset
    pending: str = ""  # the tag or entity so far
    stack: list[_Open] = field(default_factory=list)
    drops: list[tuple[int, int, str]] = field(default_factory=list)  # tags, entities: (s, e, text)
    breaks: list[tuple[int, float]] = field(default_factory=list)
    spans: list[_Span] = field(default_factory=list)


class MarkupScanner:
    """Reads a session's SSML as it streams in (one owner; not thread-safe)."""

    def __init__(self) -> None:
        self._state = _State()

    def feed(self, text: str) -> str:
        """Read the next fragment; returns its mask (same length). Raises ProtocolError
        ``invalid_ssml`` and keeps its state unchanged if the fragment is malformed."""
        state = copy.deepcopy(self._state)
        mask = [self._step(state, char) for char in text]
        self._state = state
        return "".join(mask)

    def finish(self) -> None:
        """The end of the text: an unfinished tag or entity is an error; elements still open
        end here."""
        state = self._state
        if state.tag_start is not None:
            what = "entity" if state.pending.startswith("&") else "tag"
            raise _error(state.tag_start, f"the {what} {state.pending[:40]!r} is not finished")
        while state.stack:
            self._close(state, state.stack.pop(), state.offset)

    def reset(self) -> None:
        """A barge-in: the text so far is dropped, open elements and an unfinished tag too."""
        self._state = _State(offset=self._state.offset)

    def forget_before(self, offset: int) -> None:
        """Drop what describes only text before ``offset`` (settled text)."""
        state = self._state
        state.drops = [d for d in state.drops if d[1] > offset]
        state.breaks = [b for b in state.breaks if b[0] >= offset]
        state.spans = [s for s in state.spans if s.end is None or s.end > offset]

    def markup(self, start: int, end: int, text: str) -> SegmentMarkup:
        """The markup of the session text ``[start, end)`` (``text``)."""
        return segment_markup(self._state, start, end, text)

    # -- one character -------------------------------------------------------------------------

    def _step(self, state: _State, char: str) -> str:
        at = state.offset
        state.offset += 1
        if state.tag_start is not None:
            state.pending += char
            if state.pending.startswith("&"):
                return self._entity_char(state, char)
            if char == ">" and _quotes_closed(state.pending):
                self._tag(state, state.tag_start, state.pending)
                state.tag_start, state.pending = None, ""
            elif len(state.pending) > MAX_TAG_CHARS:
                raise _error(state.tag_start, f"a tag longer than {MAX_TAG_CHARS} characters")
            return " "
        if char in "<&":
            state.tag_start, state.pending = at, char
            return " " if char == "<" else "x"
        if char == ">":
            raise _error(at, "'>' outside a tag (write &gt;)")
        if state.stack and state.stack[-1].name in _TEXT_ONLY:
            if at - state.stack[-1].content_start >= MAX_CONTENT_CHARS:
                name = state.stack[-1].name
                raise _error(at, f"<{name}> holds more than {MAX_CONTENT_CHARS} characters")
            return "x"
        return char

    def _entity_char(self, state: _State, char: str) -> str:
        assert state.tag_start is not None
        if char == ";":
            if not _ENTITY.fullmatch(state.pending):
                raise _error(state.tag_start, f"unknown entity {state.pending!r}")
            decoded = html.unescape(state.pending)
            state.drops.append((state.tag_start, state.offset, decoded))
            state.tag_start, state.pending = None, ""
        elif len(state.pending) > 10 or not (char.isalnum() or char == "#"):
            raise _error(state.tag_start, f"'&' that starts no entity (write &amp;): "
                                          f"{state.pending[:12]!r}")  # fmt: skip
        return "x"

    # -- one tag ------------------------------------------------------------------------------

    def _tag(self, state: _State, start: int, tag: str) -> None:
        end = start + len(tag)
        state.drops.append((start, end, ""))
        if tag.startswith("<?") and tag.endswith("?>"):
            return  # an XML declaration
        if tag.startswith("</"):
            name = tag[2:-1].strip()
            if not state.stack or state.stack[-1].name != name:
                expected = f"</{state.stack[-1].name}>" if state.stack else "no end tag"
                raise _error(start, f"</{name}> does not close an open element ({expected})")
            self._close(state, state.stack.pop(), start)
            return
        empty = tag.endswith("/>")
        body = tag[1 : -2 if empty else -1]
        name_match = _NAME.match(body)
        if name_match is None:
            raise _error(start, f"a tag without an element name: {tag[:40]!r}")
        name = name_match.group()
        attributes = _attributes(start, name, body[name_match.end() :])
        if state.stack and state.stack[-1].name in _TEXT_ONLY:
            raise _error(start, f"<{state.stack[-1].name}> holds text only, not <{name}>")
        if name == "break":
            state.breaks.append((end, _break_ms(start, attributes)))
            return
        if empty:
            raise _error(start, f"<{name}/> must have content")
        if len(state.stack) >= MAX_DEPTH:
            raise _error(start, f"elements nested more than {MAX_DEPTH} deep")
        _check_element(start, name, attributes)
        state.stack.append(_Open(name, end, attributes))

    def _close(self, state: _State, element: _Open, end: int) -> None:
        name, attributes, start = element.name, element.attributes, element.content_start
        if name == "prosody":
            state.spans.append(_Span(start, end, rate=_rate(attributes.get("rate", "medium"))))
        elif name == "emphasis":
            state.spans.append(
                _Span(start, end, rate=_EMPHASIS[attributes.get("level", "moderate")])
            )
        elif name in _TEXT_ONLY and end > start:
            state.spans.append(_Span(start, end, reading=_reading(name, attributes)))


def _quotes_closed(tag: str) -> bool:
    return tag.count('"') % 2 == 0 and tag.count("'") % 2 == 0


def _error(offset: int, message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_SSML, f"invalid SSML at character {offset}: {message}")


def _attributes(start: int, name: str, text: str) -> dict[str, str]:
    if name not in _ATTRIBUTES:
        allowed = ", ".join(f"<{n}>" for n in _ATTRIBUTES)
        raise _error(start, f"<{name}> is not supported (elements: {allowed})")
    attributes: dict[str, str] = {}
    position = 0
    while position < len(text.rstrip()):
        match = _ATTRIBUTE.match(text, position)
        if match is None:
            raise _error(start, f"malformed attributes in <{name}>: {text[position:][:40]!r}")
        key, value = match.group(1), html.unescape(match.group(2)[1:-1])
        if key not in _ATTRIBUTES[name]:
            known = ", ".join(_ATTRIBUTES[name]) or "none"
            raise _error(start, f"<{name}> has no attribute {key!r} (attributes: {known})")
        attributes[key] = value
        position = match.end()
    return attributes


def _break_ms(start: int, attributes: dict[str, str]) -> float:
    if "time" in attributes:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\s*", attributes["time"])
        if match is None:
            raise _error(start, f"<break time> must be like '500ms' or '1.5s', got "
                                f"{attributes['time']!r}")  # fmt: skip
        ms = float(match.group(1)) * (1000.0 if match.group(2) == "s" else 1.0)
        if ms > MAX_BREAK_MS:
            raise _error(start, f"<break time> of at most {MAX_BREAK_MS / 1000:g} s")
        return ms
    strength = attributes.get("strength", "medium")
    if strength not in _STRENGTHS:
        raise _error(start, f"<break strength> must be one of {', '.join(_STRENGTHS)}")
    return _STRENGTHS[strength]


def _check_element(start: int, name: str, attributes: dict[str, str]) -> None:
    """The attributes an element needs, with values it takes (checked at its start tag)."""
    try:
        if name == "prosody":
            _rate(attributes.get("rate", "medium"))
        elif name == "emphasis" and attributes.get("level", "moderate") not in _EMPHASIS:
            raise ValueError(f"<emphasis level> must be one of {', '.join(_EMPHASIS)}")
        elif name == "sub" and not attributes.get("alias", "").strip():
            raise ValueError("<sub> needs an 'alias'")
        elif name == "phoneme":
            if not attributes.get("ph", "").strip():
                raise ValueError("<phoneme> needs a 'ph'")
            if attributes.get("alphabet", "ipa") not in ("ipa", "x-espeak"):
                raise ValueError("<phoneme alphabet> must be 'ipa' or 'x-espeak'")
        elif name == "say-as":
            if attributes.get("interpret-as") not in _SAY_AS:
                raise ValueError(f"<say-as interpret-as> must be one of {', '.join(_SAY_AS)}")
            if attributes.get("format", "mdy") not in ("mdy", "dmy", "ymd"):
                raise ValueError("<say-as format> must be 'mdy', 'dmy' or 'ymd'")
    except ValueError as exc:
        raise _error(start, str(exc)) from None


def _rate(value: str) -> float:
    value = value.strip()
    if value in _RATES:
        return _RATES[value]
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(%?)", value)
    if match is None:
        raise ValueError(f"<prosody rate> must be one of {', '.join(_RATES)}, a percentage or "
                         f"a factor, got {value!r}")  # fmt: skip
    factor = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"<prosody rate> must be between 50% and 200%, got {value!r}")
    return factor


def _reading(name: str, attributes: dict[str, str]) -> _Reading:
    """What the content of a ``sub``, ``phoneme`` or ``say-as`` reads as."""
    if name == "sub":
        return _Reading("sub", alias=attributes["alias"])
    if name == "phoneme":
        ph = attributes["ph"]
        ipa = attributes.get("alphabet", "ipa") == "ipa"
        return _Reading("phoneme", phonemes=Phonemes(ipa=ph) if ipa else Phonemes(espeak=ph))
    return _Reading(f"say-as:{attributes['interpret-as']}:{attributes.get('format', '')}")


@dataclass(frozen=True, slots=True)
class SegmentMarkup:
    """One segment's markup, offsets relative to the segment: ``plain`` is its text with tags
    blanked (spaces) and entities decoded (padded with spaces), what remote providers read;
    ``readings`` are the fixed readings of its elements and of the blanks (read as nothing), for
    the gateway's normalizer; ``breaks`` are (offset, ms) pauses; ``rates`` are (start, end,
    factor) stretches read at another rate."""

    plain: str
    readings: tuple[Replacement, ...] = ()
    breaks: tuple[tuple[int, float], ...] = ()
    rates: tuple[tuple[int, int, float], ...] = ()

    def cuts(self) -> list[int]:
        """Offsets where a backend call must end: breaks and changes of rate."""
        points = {at for at, _ in self.breaks}
        for start, end, _ in self.rates:
            points |= {start, end}
        return sorted(p for p in points if 0 < p < len(self.plain))

    def readings_in(self, start: int, end: int) -> tuple[Replacement, ...]:
        """The readings inside ``[start, end)``, with offsets from ``start``."""
        return tuple(
            Replacement(r.start - start, r.end - start, r.spoken, r.kind, r.phonemes)
            for r in self.readings
            if start <= r.start and r.end <= end
        )

    def rate_at(self, offset: int) -> float:
        """The rate factor at ``offset`` (nested elements multiply)."""
        factor = 1.0
        for start, end, rate in self.rates:
            if start <= offset < end:
                factor *= rate
        return factor


def segment_markup(state: _State, start: int, end: int, text: str) -> SegmentMarkup:
    """The markup of session text ``[start, end)`` from a scanner's state (see
    :meth:`MarkupScanner.markup`)."""
    plain = list(text)
    readings: list[Replacement] = []
    unfinished = [] if state.tag_start is None else [(state.tag_start, end, "")]
    for drop_start, drop_end, decoded in (*state.drops, *unfinished):
        lo, hi = max(drop_start, start), min(drop_end, end)
        for at in range(lo, hi):
            plain[at - start] = " "
        if lo == drop_start and decoded and lo < hi:
            plain[lo - start] = decoded
            lo += 1
        if lo < hi:  # read as nothing, joining what is around it ("word</sub>.": "word.")
            readings.append(Replacement(lo - start, hi - start, "", "markup"))
    open_spans = [_Span(o.content_start, None, rate=_open_rate(o)) for o in state.stack]
    open_spans += [
        _Span(o.content_start, None, reading=_reading(o.name, o.attributes))
        for o in state.stack
        if o.name in _TEXT_ONLY
    ]
    rates = []
    for span in (*state.spans, *open_spans):
        span_end = end if span.end is None else span.end
        lo, hi = max(span.start, start), min(span_end, end)
        if lo >= hi:
            continue
        if span.reading is not None:
            spoken = (
                _spoken(span.reading, text[lo - start : hi - start]) if lo == span.start else ""
            )
            readings.append(Replacement(lo - start, hi - start, spoken, span.reading.kind,
                                        span.reading.phonemes))  # fmt: skip
        elif span.rate != 1.0:
            rates.append((lo - start, hi - start, span.rate))
    breaks = tuple((at - start, ms) for at, ms in state.breaks if start <= at <= end)
    readings.sort(key=lambda r: r.start)
    return SegmentMarkup("".join(plain), tuple(readings), breaks, tuple(rates))


def _open_rate(element: _Open) -> float:
    if element.name == "prosody":
        return _rate(element.attributes.get("rate", "medium"))
    if element.name == "emphasis":
        return _EMPHASIS[element.attributes.get("level", "moderate")]
    return 1.0


def _spoken(reading: _Reading, content: str) -> str:
    """The words a reading says for ``content`` (an element's content as written)."""
    if reading.kind == "sub":
        return reading.alias
    if reading.kind == "phoneme":
        return " ".join(html.unescape(content).split())
    _, interpret_as, date_format = reading.kind.split(":")
    return say_as(interpret_as, content, date_format)
