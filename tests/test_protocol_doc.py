"""docs/protocol.md stays true to the code: messages, fields, word keys, progress events, error
codes, metrics, defaults.

The document's tables are parsed: a table whose first header cell is ``Field`` lists the fields of
the message whose section (a ``### `type` `` heading) it is in, ``Key`` tables (in the ``words``
section) the keys of a word map, ``Event`` tables (in the ``progress`` section) the progress
events, ``Code`` tables list error codes, ``Metric`` tables the keys of ``done.metrics`` and
``Setting`` tables configuration defaults. The message types are those of the protocol module's
unions, so a new message fails until it is documented. Both directions are checked, so renaming or
removing a field in the code or in the document fails. Every setting of the sections in
``COMPLETE_SECTIONS`` and every backend's ``fallback`` must be in a Setting table, so a new limit
fails until it is documented.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import pytest

from gateway.config import Config, load_config
from gateway.core.protocol import (
    AudioFormat,
    Auth,
    BackendSwitched,
    Cancel,
    ClientMessage,
    ErrorCode,
    Progress,
    SegmentStart,
    ServerMessage,
    Start,
    Words,
)
from gateway.core.segmenter import Boundary
from gateway.core.session import ReleasedBy
from tests.conftest import REPO, repo_config, serve, timeout
from tests.fakes import ToneBackend
from tests.streams import collect
from tts_gateway_client import connect

DOC_PATH = REPO / "docs" / "protocol.md"
# Every message of the protocol module's unions, so a new message fails until it is documented.
CLIENT_MESSAGES: tuple[type[Any], ...] = get_args(ClientMessage)
SERVER_MESSAGES: tuple[type[Any], ...] = get_args(ServerMessage)
# Every value of these enumerations is named in the section of the message that carries it.
ENUMS_BY_MESSAGE: dict[str, tuple[type[enum.Enum], ...]] = {
    Start.TYPE: (AudioFormat,),
    SegmentStart.TYPE: (Boundary, ReleasedBy),
}

# Tables that list something of one message, and the message whose section holds them.
TABLE_HOMES: dict[str, str] = {"Key": Words.TYPE, "Event": Progress.TYPE}
# Config sections whose every setting the document lists (they shape what a client sees).
COMPLETE_SECTIONS = ("limits", "auth", "session")
# Settings every configured backend has that the document lists (for the ``kokoro`` backend).
PER_BACKEND_SETTINGS = ("fallback", "fallback_recover_s")

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_MESSAGE_HEADING = re.compile(r"^`([a-z_]+)`$")
_NAME_CELL = re.compile(r"^`([^`]+)`$")


# -- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A Markdown table and the title of the heading it is under."""

    section: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def kind(self) -> str:
        return self.header[0] if self.header else ""


@dataclass(frozen=True)
class Section:
    """The lines under one heading, up to the next heading of any level."""

    level: int
    title: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def parse_sections(doc: str) -> list[Section]:
    """Split the document at its headings (lines in fenced code blocks are never headings)."""
    sections: list[Section] = []
    level, title = 0, ""
    lines: list[str] = []
    fenced = False
    for line in doc.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            sections.append(Section(level, title, tuple(lines)))
            level, title, lines = len(heading.group(1)), heading.group(2), []
        else:
            lines.append(line)
    sections.append(Section(level, title, tuple(lines)))
    return sections


def _cells(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in line.strip().strip("|").split("|"))


def parse_tables(section: Section) -> list[Table]:
    tables: list[Table] = []
    block: list[str] = []
    fenced = False
    for line in (*section.lines, ""):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.lstrip().startswith("|"):
            block.append(line)
            continue
        if block:
            header, *body = (_cells(row) for row in block)
            rows = tuple(row for row in body if not all(set(c) <= set("-: ") for c in row))
            tables.append(Table(section.title, header, rows))
            block = []
    return tables


def all_tables(doc: str) -> list[Table]:
    return [table for section in parse_sections(doc) for table in parse_tables(section)]


def named_rows(table: Table) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The rows by the backticked name in their first cell, and problems with unnamed rows."""
    names: dict[str, tuple[str, ...]] = {}
    problems = []
    for row in table.rows:
        match = _NAME_CELL.match(row[0])
        if match is None:
            problems.append(f"{table.kind} table under {table.section!r}: no `name` in {row[0]!r}")
        else:
            names[match.group(1)] = row
    return names, problems


# -- checks ----------------------------------------------------------------------------------


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _message_sections(doc: str) -> dict[str, list[Section]]:
    found: dict[str, list[Section]] = {}
    for section in parse_sections(doc):
        match = _MESSAGE_HEADING.match(section.title)
        if section.level == 3 and match:
            found.setdefault(match.group(1), []).append(section)
    return found


def message_problems(doc: str) -> list[str]:
    """Every message type has one section whose Field table lists exactly its fields."""
    problems: list[str] = []
    sections = _message_sections(doc)
    classes = {cls.TYPE: cls for cls in (*CLIENT_MESSAGES, *SERVER_MESSAGES)}
    for kind, cls in classes.items():
        found = sections.get(kind, [])
        if len(found) != 1:
            problems.append(
                f"message {kind!r}: expected one '### `{kind}`' section, found {len(found)}"
            )
            continue
        section = found[0]
        documented: dict[str, tuple[str, ...]] = {}
        required_column: dict[str, int] = {}
        for table in parse_tables(section):
            if table.kind != "Field":
                continue
            rows, row_problems = named_rows(table)
            problems += row_problems
            documented.update(rows)
            if "Req." in table.header:
                for name in rows:
                    required_column[name] = table.header.index("Req.")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields.keys() - documented.keys():
            problems.append(f"message {kind!r}: field {name!r} is not in its Field table")
        for name in documented.keys() - fields.keys():
            problems.append(f"message {kind!r}: documented field {name!r} does not exist in {cls}")
        for name, column in required_column.items():
            if name in fields:
                stated = documented[name][column]
                expected = "required" if _required(fields[name]) else "optional"
                if stated != expected:
                    problems.append(f"{kind}.{name}: documented {stated!r}, code says {expected!r}")
        for enum_type in ENUMS_BY_MESSAGE.get(kind, ()):
            for member in enum_type:
                shown = (f"`{member.value}`", f'`"{member.value}"`')
                if not any(form in section.text for form in shown):
                    problems.append(
                        f"message {kind!r}: {enum_type.__name__} value {member.value!r} "
                        "is not named in its section"
                    )
    for table in all_tables(doc):
        match = _MESSAGE_HEADING.match(table.section)
        if table.kind == "Field" and (match is None or match.group(1) not in classes):
            problems.append(f"a Field table is outside a message section: {table.section!r}")
        home = TABLE_HOMES.get(table.kind)
        if home is not None and (match is None or match.group(1) != home):
            problems.append(f"a {table.kind} table is outside the {home!r} section")
    return problems


def listed_problems(doc: str, kind: str, what: str, sent: Iterable[str]) -> list[str]:
    """The ``kind`` tables in their message's section list exactly the names ``sent``."""
    problems: list[str] = []
    documented: set[str] = set()
    for section in _message_sections(doc).get(TABLE_HOMES[kind], []):
        for table in parse_tables(section):
            if table.kind == kind:
                rows, row_problems = named_rows(table)
                problems += row_problems
                documented |= rows.keys()
    seen = set(sent)
    problems += [f"{what} {name!r} is not documented" for name in sorted(seen - documented)]
    problems += [f"documented {what} {name!r} is not sent" for name in sorted(documented - seen)]
    return problems


def word_key_problems(doc: str, keys: Iterable[str]) -> list[str]:
    """The ``Key`` table of ``words`` lists exactly the keys the word maps have."""
    return listed_problems(doc, "Key", "word key", keys)


def progress_event_problems(doc: str, events: Iterable[str]) -> list[str]:
    """The ``Event`` table of ``progress`` lists exactly the events sent."""
    return listed_problems(doc, "Event", "progress event", events)


def error_code_problems(doc: str) -> list[str]:
    """The Code tables list exactly the ErrorCode values."""
    problems: list[str] = []
    documented: set[str] = set()
    for table in all_tables(doc):
        if table.kind == "Code":
            rows, row_problems = named_rows(table)
            problems += row_problems
            documented |= rows.keys()
    codes = {code.value for code in ErrorCode}
    problems += [f"error code {code!r} is not documented" for code in sorted(codes - documented)]
    problems += [
        f"documented error code {c!r} is not an ErrorCode" for c in sorted(documented - codes)
    ]
    return problems


def metric_problems(doc: str, metrics: Iterable[str]) -> list[str]:
    """The Metric tables list exactly the keys of ``done.metrics``."""
    problems: list[str] = []
    documented: set[str] = set()
    for table in all_tables(doc):
        if table.kind == "Metric":
            rows, row_problems = named_rows(table)
            problems += row_problems
            documented |= rows.keys()
    sent = set(metrics)
    problems += [f"metric {name!r} is not documented" for name in sorted(sent - documented)]
    problems += [f"documented metric {name!r} is not sent" for name in sorted(documented - sent)]
    return problems


def _resolve(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = value[part] if isinstance(value, Mapping) else getattr(value, part)
    return value


def _shown(value: object) -> str:
    """A default as the document writes it."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple | list):  # a TOML array
        return "`[" + ", ".join(f'"{item}"' for item in value) + "]`"
    return str(value)


def _documented_settings(doc: str) -> set[str]:
    names: set[str] = set()
    for table in all_tables(doc):
        if table.kind == "Setting":
            names |= named_rows(table)[0].keys()
    return names


def missing_setting_problems(doc: str, config: Config) -> list[str]:
    """Every setting of ``COMPLETE_SECTIONS`` and every per-backend setting is documented."""
    expected = {
        f"{section}.{f.name}"
        for section in COMPLETE_SECTIONS
        for f in dataclasses.fields(getattr(config, section))
    }
    for name in config.backends:
        expected |= {f"backends.{name}.{key}" for key in PER_BACKEND_SETTINGS}
    missing = expected - _documented_settings(doc)
    return [f"setting {name!r} is not documented" for name in sorted(missing)]


def setting_problems(doc: str, config: Config) -> list[str]:
    """Every setting in a Setting table exists and has the stated default."""
    problems: list[str] = []
    for table in all_tables(doc):
        if table.kind != "Setting":
            continue
        rows, row_problems = named_rows(table)
        problems += row_problems
        for name, row in rows.items():
            try:
                value = _resolve(config, name)
            except (AttributeError, KeyError):
                problems.append(f"setting {name!r} does not exist")
                continue
            if row[1] != _shown(value):
                problems.append(
                    f"setting {name!r}: documented {row[1]!r}, default {_shown(value)!r}"
                )
    return problems


def doc_problems(doc: str) -> list[str]:
    """Everything that can be checked without running a session."""
    config = load_config(REPO / "config.toml", environ={})
    return [
        *message_problems(doc),
        *error_code_problems(doc),
        *setting_problems(doc, config),
        *missing_setting_problems(doc, config),
    ]


# -- tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


def test_every_message_and_field_is_documented_and_exists(doc: str) -> None:
    assert message_problems(doc) == []


def test_every_error_code_is_documented(doc: str) -> None:
    assert error_code_problems(doc) == []


def test_documented_defaults_are_the_configured_ones(doc: str) -> None:
    assert setting_problems(doc, load_config(REPO / "config.toml", environ={})) == []


def test_every_limit_auth_and_fallback_setting_is_documented(doc: str) -> None:
    assert missing_setting_problems(doc, load_config(REPO / "config.toml", environ={})) == []


async def test_metrics_word_keys_and_progress_events_match_a_live_session(doc: str) -> None:
    config = repo_config()
    # Ticks every 10 ms and a backend that takes its time, so that every event is sent.
    session = dataclasses.replace(config.session, progress_interval_ms=10)
    backend = ToneBackend("kokoro", chunk_delay_s=0.01)
    served = await serve(dataclasses.replace(config, session=session), {"kokoro": backend})
    try:
        async with connect(served.ws_url) as stream:
            stream.feed(["Hello there. ", "It costs $4.50", " and more"])
            transcript = await collect(stream, deadline_s=timeout(10))
    finally:
        await served.stop()
    assert transcript.done is not None
    assert metric_problems(doc, transcript.done.metrics) == []
    word_keys = {key for m in transcript.of(Words) for word in m.words for key in word}
    assert "spoken" in word_keys  # "$4.50" is read "four dollars and fifty cents"
    assert word_key_problems(doc, word_keys) == []
    assert progress_event_problems(doc, {m.event for m in transcript.of(Progress)}) == []


# The checks must be able to fail: each edit of the document below must be reported.
MUTATIONS = [
    pytest.param("| `unspoken_text` |", "| `unspoken_txt` |", id="renamed-field"),
    pytest.param("| `frame_samples` |", "| frame_samples |", id="unnamed-row"),
    pytest.param("| `backend_unavailable` |", "| `backend_gone` |", id="renamed-error-code"),
    pytest.param("### `flushed`", "### `flush_done`", id="renamed-message"),
    pytest.param(
        "| `text` | str | required | any string,",
        "| `text` | str | optional | any string,",
        id="required",
    ),
    pytest.param(
        "| `backend` | str | optional | 1-200 characters; a configured",
        "| `backend` | str | required | 1-200 characters; a configured",
        id="estimate-req",
    ),
    pytest.param("### `estimated`", "### `estimate_result`", id="renamed-estimate-answer"),
    pytest.param(
        "| `limits.max_pending_chars` | 100000 |",
        "| `limits.max_pending_chars` | 2 |",
        id="default",
    ),
    pytest.param("| `segmenter.max_chars` |", "| `segmenter.max_length` |", id="no-setting"),
    pytest.param("`hard` (cut", "hard (cut", id="enum-value"),
    pytest.param("### `words`", "### `word`", id="renamed-new-message"),
    pytest.param("| `position` | int | optional |", "| `position` | int | required |", id="req"),
    pytest.param(
        "| `seams.word_pause_ms` | 0.0 |", "| `seams.word_pause_ms` | 20.0 |", id="changed-default"
    ),
    pytest.param("Each word is a map:\n", "## Word maps\n", id="key-table-outside-words"),
    pytest.param("| `token` | str | required |", "| `key` | str | required |", id="auth-field"),
    pytest.param("### `backend_switched`", "### `backend_change`", id="renamed-switch-message"),
    pytest.param("| `previous` | str |", "| `from` | str |", id="renamed-switch-field"),
    pytest.param("| `shutting_down` |", "| `shutdown` |", id="renamed-new-error-code"),
    pytest.param('| `auth.required` | `"auto"` |', '| `auth.required` | `"yes"` |', id="enum"),
    pytest.param("| `auth.api_keys` | `[]` |", "| `auth.api_keys` | `()` |", id="list-default"),
    pytest.param(
        "| `limits.idle_timeout_s` | 60.0 |", "| `limits.idle_timeout` | 60.0 |", id="new-limit"
    ),
]


@pytest.mark.parametrize(("old", "new"), MUTATIONS)
def test_the_checks_catch_a_wrong_document(doc: str, old: str, new: str) -> None:
    assert doc.count(old) == 1, f"the mutation no longer applies: {old!r}"
    assert doc_problems(doc.replace(old, new)) != []


def test_the_checks_catch_a_field_missing_from_the_document(doc: str) -> None:
    row = next(line for line in doc.splitlines() if line.startswith("| `synthesis_ms` | float"))
    problems = message_problems(doc.replace(row + "\n", ""))
    assert problems == ["message 'segment_end': field 'synthesis_ms' is not in its Field table"]


@pytest.mark.parametrize("setting", ["limits.max_message_burst", "backends.kokoro.fallback"])
def test_the_checks_catch_a_setting_missing_from_the_document(doc: str, setting: str) -> None:
    row = next(line for line in doc.splitlines() if line.startswith(f"| `{setting}` |"))
    config = load_config(REPO / "config.toml", environ={})
    problems = missing_setting_problems(doc.replace(row + "\n", ""), config)
    assert problems == [f"setting {setting!r} is not documented"]


def test_the_checks_catch_a_wrong_word_key_or_progress_event(doc: str) -> None:
    keys = {"text", "char_start", "char_end", "sample_start", "sample_end", "spoken"}
    assert word_key_problems(doc, keys) == []
    assert word_key_problems(doc, keys - {"spoken"}) == ["documented word key 'spoken' is not sent"]
    assert word_key_problems(doc, {*keys, "confidence"}) == [
        "word key 'confidence' is not documented"
    ]
    renamed = doc.replace("| `sample_end` | int | always |", "| `sample_stop` | int | always |")
    assert word_key_problems(renamed, keys) != []
    events = {"synthesis_started", "first_audio", "segment_done", "tick"}
    assert progress_event_problems(doc, events) == []
    assert progress_event_problems(doc, {*events, "stalled"}) != []
    assert progress_event_problems(doc.replace("| `tick` |", "| tick |"), events) != []


def test_the_message_lists_come_from_the_protocol() -> None:
    assert {Words, Progress, SegmentStart, BackendSwitched} <= set(SERVER_MESSAGES)
    assert {Start, Cancel, Auth} <= set(CLIENT_MESSAGES)


def test_the_checks_catch_a_wrong_metric(doc: str) -> None:
    metrics = {"chars_received", "chars_spoken"}
    assert "documented metric 'session_ms' is not sent" in metric_problems(doc, metrics)
    assert metric_problems(doc, {"new_metric"}) != []


def test_headings_in_code_blocks_are_not_sections() -> None:
    doc = "## A\n```python\n# not a heading\n| `x` | y |\n```\n| Code | x |\n| --- | --- |\n"
    sections = parse_sections(doc)
    assert [s.title for s in sections] == ["", "A"]
    assert [t.header for t in all_tables(doc)] == [("Code", "x")]
