"""Every message of a recorded session decoded by a strict schema taken from docs/protocol.md's
tables: each field present, of exactly the documented msgpack type (a float field holding an
integer fails, as it fails a strictly typed client), and nothing undocumented.

The schema is read from the document (the ``msgpack type`` column of each server message's Field
table, the word map's Key table and the Metric table of ``done.metrics``) with the parser of
``tests/test_protocol_doc.py``; the session is recorded raw, before any decoding of ours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import repo_config, serve, timeout
from tests.fakes import RAISE_MARKER, ToneBackend
from tests.test_protocol_doc import DOC_PATH, Table, named_rows, parse_sections, parse_tables

Check = Callable[[Any], bool]

# The msgpack types the document names, as the Python values msgpack decodes them to.
_ATOMS: dict[str, Check] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, float),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "bin": lambda v: isinstance(v, bytes),
    "map": lambda v: isinstance(v, dict),
    "array of maps": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "nil": lambda v: v is None,
}
_MESSAGE_HEADING = re.compile(r"^`([a-z_]+)`$")


def type_check(cell: str) -> Check:
    """A check for a ``msgpack type`` cell such as ``int``, ``float or nil``, ``int, str or
    nil`` or ``array of maps``; an unknown name is a broken document."""
    names = [name.strip() for name in re.split(r",| or ", cell) if name.strip()]
    unknown = [name for name in names if name not in _ATOMS]
    assert not unknown, f"unknown msgpack type {unknown} in {cell!r}"
    checks = [_ATOMS[name] for name in names]
    return lambda value: any(check(value) for check in checks)


@dataclasses.dataclass(frozen=True)
class Schema:
    """What the document says the server sends."""

    messages: Mapping[str, Mapping[str, tuple[str, Check]]]  # type -> field -> (cell, check)
    word_keys: Mapping[str, tuple[str, Check, bool]]  # key -> (cell, check, always present)
    metrics: Mapping[str, tuple[str, Check]]


def _typed_rows(table: Table) -> dict[str, tuple[str, Check]]:
    column = table.header.index("msgpack type")
    rows, problems = named_rows(table)
    assert not problems, problems
    return {name: (row[column], type_check(row[column])) for name, row in rows.items()}


def read_schema(doc: str) -> Schema:
    messages: dict[str, dict[str, tuple[str, Check]]] = {}
    word_keys: dict[str, tuple[str, Check, bool]] = {}
    metrics: dict[str, tuple[str, Check]] = {}
    in_server_messages = False
    for section in parse_sections(doc):
        if section.level == 2:
            in_server_messages = section.title.startswith("4.")
        heading = _MESSAGE_HEADING.match(section.title)
        for table in parse_tables(section):
            if table.kind == "Metric":
                metrics.update(_typed_rows(table))
            elif table.kind == "Key":
                presence = table.header.index("Presence")
                rows, _ = named_rows(table)
                for name, (cell, check) in _typed_rows(table).items():
                    word_keys[name] = (cell, check, rows[name][presence] == "always")
            elif table.kind == "Field" and in_server_messages and heading:
                messages.setdefault(heading.group(1), {}).update(_typed_rows(table))
    return Schema(messages, word_keys, metrics)


def schema_problems(schema: Schema, raw: bytes) -> list[str]:
    """Everything in one server frame that the document does not allow."""
    body = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    kind = body.get("type")
    if next(iter(body), None) != "type":
        return [f"{kind}: 'type' is not the first key"]
    fields = schema.messages.get(kind)
    if fields is None:
        return [f"undocumented message type {kind!r}"]
    problems = [f"{kind}: field {name!r} is not documented" for name in body.keys() - {"type"}
                if name not in fields]  # fmt: skip
    for name, (cell, check) in fields.items():
        if name not in body:
            problems.append(f"{kind}.{name}: missing")
        elif not check(body[name]):
            problems.append(f"{kind}.{name}: {body[name]!r} is not {cell}")
    if kind == "words":
        for word in body.get("words", []):
            problems += _map_problems("words.words[]", word, schema.word_keys)
    if kind == "done" and isinstance(body.get("metrics"), dict):
        required = {name: (cell, check, True) for name, (cell, check) in schema.metrics.items()}
        problems += _map_problems("done.metrics", body["metrics"], required)
    return problems


def _map_problems(
    where: str, found: Mapping[str, Any], keys: Mapping[str, tuple[str, Check, bool]]
) -> list[str]:
    problems = [f"{where}: key {k!r} is not documented" for k in found if k not in keys]
    for name, (cell, check, always) in keys.items():
        if name not in found:
            if always:
                problems.append(f"{where}.{name}: missing")
        elif not check(found[name]):
            problems.append(f"{where}.{name}: {found[name]!r} is not {cell}")
    return problems


# -- a recorded session ----------------------------------------------------------------------


async def _until(socket: ClientConnection, frames: list[bytes], kind: str) -> None:
    """Record frames until one of type ``kind`` has come."""
    async with asyncio.timeout(timeout(20)):
        while True:
            frame = await socket.recv()
            assert isinstance(frame, bytes)
            frames.append(frame)
            if msgpack.unpackb(frame)["type"] == kind:
                return


async def record_session() -> list[bytes]:
    """A session that makes the gateway send every message type: an estimate before `start`,
    a refused message, speech with words and ticks, a flush, a cancel mid-speech, a backend
    failure with a switch to the fallback, and the end."""
    config = repo_config()
    session = dataclasses.replace(config.session, progress_interval_ms=10)
    primary = dataclasses.replace(config.backends["kokoro"], fallback="spare")
    spare = config.backends["kokoro"]
    config = dataclasses.replace(config, session=session,
                                 backends={"kokoro": primary, "spare": spare})  # fmt: skip
    backends = {"kokoro": ToneBackend("kokoro", chunk_delay_s=0.01), "spare": ToneBackend("spare")}
    served = await serve(config, backends)  # type: ignore[arg-type]
    frames: list[bytes] = []

    async def send(socket: ClientConnection, **message: Any) -> None:
        await socket.send(msgpack.packb(message))

    try:
        async with ws_connect(served.ws_url, compression=None, max_size=None) as socket:
            await send(socket, type="estimate", backend="kokoro", text="Price this first.", id=1)
            await send(socket, type="start", speed=1)  # an integer speed: ready.speed is float
            await send(socket, type="no_such_message")
            await send(socket, type="text", text="Hello there. It costs $4.50 today. ")
            await send(socket, type="flush", id="f1")
            await _until(socket, frames, "flushed")
            await send(socket, type="estimate", text="And this.", id="e2")
            await send(socket, type="text", text="A long tail of words to cut short, " * 6)
            await _until(socket, frames, "audio")
            await send(socket, type="cancel", id="c1")
            await _until(socket, frames, "cancelled")
            await send(socket, type="text", text=f"Then {RAISE_MARKER} now. And after.")
            await send(socket, type="end")
            try:
                async with asyncio.timeout(timeout(20)):
                    async for frame in socket:
                        assert isinstance(frame, bytes)
                        frames.append(frame)
            except ConnectionClosed:
                pass
    finally:
        await served.stop()
    return frames


@pytest.fixture(scope="module")
def schema() -> Schema:
    return read_schema(DOC_PATH.read_text(encoding="utf-8"))


async def test_every_message_of_a_session_has_the_documented_types(schema: Schema) -> None:
    frames = await record_session()
    kinds = [msgpack.unpackb(frame)["type"] for frame in frames]
    # Every server message is in the recording, so every table is exercised.
    assert set(kinds) == set(schema.messages), set(schema.messages) ^ set(kinds)
    problems = sorted({problem for frame in frames for problem in schema_problems(schema, frame)})
    assert problems == []
    # Section 7: only errors and answers to estimates sent before `start` precede `ready`.
    assert set(kinds[: kinds.index("ready")]) <= {"error", "estimated"}


def test_the_schema_rejects_what_a_strict_client_would(schema: Schema) -> None:
    def frame(**body: Any) -> bytes:
        packed: bytes = msgpack.packb({"type": "segment_end", **body})
        return packed

    good = frame(segment=0, sample_end=480, synthesis_ms=12.5)
    assert schema_problems(schema, good) == []
    assert schema_problems(schema, frame(segment=0, sample_end=480, synthesis_ms=12)) == [
        "segment_end.synthesis_ms: 12 is not float"
    ]
    assert schema_problems(schema, frame(segment=True, sample_end=480, synthesis_ms=1.0)) != []
    assert schema_problems(schema, frame(segment=0, sample_end=480)) == [
        "segment_end.synthesis_ms: missing"
    ]
    extra = frame(segment=0, sample_end=480, synthesis_ms=1.0, surprise=1)
    assert schema_problems(schema, extra) == ["segment_end: field 'surprise' is not documented"]
    late_type: bytes = msgpack.packb({"segment": 0, "type": "segment_end"})
    assert schema_problems(schema, late_type) == ["segment_end: 'type' is not the first key"]
    assert type_check("int, str or nil")("x")
    assert not type_check("int or nil")(1.5)
    with pytest.raises(AssertionError):
        type_check("integer")


# -- the worked examples ---------------------------------------------------------------------


def example_messages(doc: str) -> list[str]:
    """The server messages shown whole (no ``...`` elision) in section 13's examples, as text."""
    section = next(s for s in parse_sections(doc) if s.title.startswith("13."))
    messages: list[str] = []
    current: list[str] = []
    depth = 0
    for line in section.lines:
        if not current and not line.startswith("S: {"):
            continue
        current.append(line.removeprefix("S: "))
        depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
        if depth == 0:
            text = "\n".join(current)
            if "..." not in text:
                messages.append(text)
            current = []
    return messages


def example_keys(text: str) -> tuple[str, dict[str, set[str]]]:
    """A message shown JSON-like: its type and the keys of each of its maps, by depth (1: the
    message's own keys; 2: a map inside it, such as ``done.metrics``)."""
    keys: dict[str, set[str]] = {}
    depth, quoted = 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        elif char == ":" and (name := re.search(r"(\w+)$", text[:index])) is not None:
            keys.setdefault(f"{depth}", set()).add(name.group(1))
    kind = re.match(r'\{type: "(\w+)"', text)
    assert kind is not None, text
    return kind.group(1), keys


def example_problems(schema: Schema, doc: str) -> list[str]:
    """Fields of a documented message missing from, or unknown to, a message shown whole."""
    problems = []
    for text in example_messages(doc):
        kind, keys = example_keys(text)
        shown, documented = keys["1"] - {"type"}, set(schema.messages[kind])
        problems += [f"{kind}: {name} not shown" for name in sorted(documented - shown)]
        problems += [f"{kind}: {name} not documented" for name in sorted(shown - documented)]
        if kind == "done":
            metrics, listed = keys["2"], set(schema.metrics)
            problems += [f"done.metrics: {name} not shown" for name in sorted(listed - metrics)]
            problems += [f"done.metrics: {name} unknown" for name in sorted(metrics - listed)]
    return problems


def test_the_worked_examples_show_every_field(schema: Schema) -> None:
    doc = DOC_PATH.read_text(encoding="utf-8")
    assert len(example_messages(doc)) > 10
    assert example_problems(schema, doc) == []
    # A message shown without a field fails.
    cut = doc.replace("real_time_factor: nil, cost_usd: 0.0,", "real_time_factor: nil,", 1)
    assert cut != doc
    assert example_problems(schema, cut) == ["progress: cost_usd not shown"]
