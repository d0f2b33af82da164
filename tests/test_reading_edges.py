"""The pronunciation lexicon and SSML through each edge (the WebSocket stream and REST), on the
real engines, with Whisper listening: the layers' precedence, phonemes in each engine's
alphabet, breaks on the timeline, readings in the words' ``spoken``, malformed input refused
with the position named while the session goes on."""
# ruff: noqa: RUF001 - phoneme strings are IPA on purpose

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import wave
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.backends.base import Backend
from gateway.config import AuthRequired, AuthSettings, ReadingSettings
from gateway.core.protocol import Error, SegmentStart, Words
from tests.asr import transcribe, words
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.streams import check_timeline, collect
from tts_gateway_client import ClientError, connect

KEY = "reading-test-key-0123456789"
OTHER_KEY = "reading-other-key-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def key_id(key: str) -> str:
    """How the gateway names a key (its logs, ``reading.key_lexicons``)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


GATEWAY_LEXICON = (
    {"word": "Zorb", "say": "apple"},
    {"word": "Blix", "say": "grape"},
    {"word": "Fnord", "say": "lemon"},
)
KEY_LEXICON = ({"word": "Blix", "say": "banana"}, {"word": "Fnord", "say": "melon"})


@pytest.fixture(scope="module")
async def server(espeak: Backend, piper: Backend, kokoro: Backend) -> AsyncIterator[RunningServer]:
    reading = ReadingSettings(lexicon=GATEWAY_LEXICON,
                              key_lexicons={key_id(KEY): KEY_LEXICON})  # fmt: skip
    auth = AuthSettings(required=AuthRequired.YES, api_keys=(KEY, OTHER_KEY))
    config = repo_config(reading=reading, auth=auth)
    session = dataclasses.replace(config.session, default_backend="espeak")
    running = await serve(dataclasses.replace(config, session=session),
                          {"espeak": espeak, "piper": piper, "kokoro": kokoro})  # fmt: skip
    yield running
    await running.stop()


async def spoken_words(
    server: RunningServer, text: str, *, key: str = KEY, **start: Any
) -> tuple[list[dict[str, Any]], str, list[Any]]:
    """A whole session: its words (the last timing of each), what Whisper hears, and all the
    messages."""
    headers = {"Authorization": f"Bearer {key}"}
    async with connect(server.ws_url, additional_headers=headers, **start) as stream:
        stream.feed([text])
        transcript = await collect(stream, deadline_s=timeout(120))
    assert transcript.kinds()[-1] == "done"
    check_timeline(transcript)
    kept: dict[int, dict[str, Any]] = {}
    for message in transcript.of(Words):
        kept.update({word["char_start"]: word for word in message.words})
    found = [kept[k] for k in sorted(kept)]
    return found, heard_in_stretches(transcript.pcm(), found), transcript.messages


def heard_in_stretches(
    pcm: NDArray[np.float32], found: list[dict[str, Any]], *, pause_s: float = 1.0
) -> str:
    """What Whisper hears, the audio cut in the middle of every pause between words longer than
    ``pause_s`` and each stretch transcribed alone: Whisper base ends its transcript at a long
    pause (an SSML break) and never hears the words after it."""
    cuts = [0]
    for before, after in itertools.pairwise(found):
        if after["sample_start"] - before["sample_end"] > pause_s * 24000:
            cuts.append((before["sample_end"] + after["sample_start"]) // 2)
    cuts.append(len(pcm))
    return " ".join(transcribe(pcm[a:b], 24000) for a, b in itertools.pairwise(cuts))


def spoken_of(found: list[dict[str, Any]]) -> dict[str, str | None]:
    return {word["text"]: word.get("spoken") for word in found}


# -- the lexicon ---------------------------------------------------------------------------------


async def test_lexicon_layers_session_then_key_then_gateway(server: RunningServer) -> None:
    found, heard, _ = await spoken_words(
        server, "Zorb, Blix and Fnord.", backend="piper",
        lexicon=[{"word": "fnord", "say": "cherry"}],
    )  # fmt: skip
    assert spoken_of(found) == {"Zorb": "apple", "Blix": "banana", "and": None,
                                "Fnord": "cherry"}  # fmt: skip
    assert {"apple", "banana", "cherry"} <= set(words(heard)), heard


async def test_another_key_gets_only_the_gateway_lexicon(server: RunningServer) -> None:
    found, _, _ = await spoken_words(server, "Blix and Fnord.", key=OTHER_KEY)
    assert spoken_of(found) == {"Blix": "grape", "and": None, "Fnord": "lemon"}


@pytest.mark.parametrize(
    ("backend", "entry"),
    [
        ("espeak", {"word": "Qwrtz", "espeak": "b@n'an@"}),
        ("piper", {"word": "Qwrtz", "ipa": "bənˈænə"}),
        pytest.param("kokoro", {"word": "Qwrtz", "ipa": "bənˈænə"}, marks=pytest.mark.model),
    ],
)
async def test_phonemes_in_each_engines_alphabet(
    server: RunningServer, backend: str, entry: dict[str, str]
) -> None:
    found, heard, _ = await spoken_words(
        server, "I would like a Qwrtz, please.", backend=backend, lexicon=[entry]
    )
    assert [w["text"] for w in found] == ["I", "would", "like", "a", "Qwrtz", "please"]
    assert "banana" in words(heard), heard


async def test_a_malformed_lexicon_is_refused_naming_the_field(server: RunningServer) -> None:
    with pytest.raises(ClientError, match=r"invalid_field: start\.lexicon\[1\]: needs at least"):
        async with connect(server.ws_url, additional_headers=HEADERS,
                           lexicon=[{"word": "a", "say": "b"}, {"word": "x"}]):  # fmt: skip
            pass
    with pytest.raises(ClientError, match=r"start\.lexicon\[0\]: 'pattern' is not a regular"):
        async with connect(server.ws_url, additional_headers=HEADERS,
                           lexicon=[{"pattern": "(", "say": "b"}]):  # fmt: skip
            pass


# -- SSML over the stream -----------------------------------------------------------------------

SSML = (
    '<speak>Call me <break time="1500ms"/>at <sub alias="the office">HQ</sub> on '
    '<say-as interpret-as="date" format="dmy">05/12/2024</say-as>.</speak>'
)


async def test_ssml_breaks_subs_and_say_as_on_the_stream(server: RunningServer) -> None:
    found, heard, _ = await spoken_words(server, SSML, ssml=True)
    assert [w["text"] for w in found] == ["Call", "me", "at", "HQ", "on", "05/12/2024"]
    spoken = spoken_of(found)
    assert spoken["HQ"] == "the office"
    assert spoken["05/12/2024"] == "the fifth of December twenty twenty-four"
    me, at = found[1], found[2]
    assert at["sample_start"] - me["sample_end"] >= 1.5 * 24000, "the break is on the timeline"
    assert "office" in words(heard)
    assert "december" in words(heard)
    assert "speak" not in words(heard), "markup is never spoken"


async def test_without_ssml_markup_is_not_interpreted(server: RunningServer) -> None:
    found, _, _ = await spoken_words(server, 'Meet at <sub alias="the office">HQ</sub>.')
    assert spoken_of(found).get("HQ") == "H-Q"  # the tags are dropped as HTML, not read


async def test_malformed_ssml_is_refused_and_the_session_goes_on(server: RunningServer) -> None:
    async with connect(server.ws_url, additional_headers=HEADERS, ssml=True) as stream:
        await stream.send_text("Good <sub alias='x'>y</sub>. ")
        await stream.send_text("Bad <blink>here</blink>. ")
        await stream.send_text("Good again.")
        await stream.end()
        transcript = await collect(stream, deadline_s=timeout(60))
    errors = transcript.of(Error)
    assert [(e.code, e.fatal, e.ref) for e in errors] == [("invalid_ssml", False, "text")]
    assert "invalid SSML at character 33: <blink> is not supported" in errors[0].message
    texts = "".join(s.text for s in transcript.of(SegmentStart))
    assert texts == "Good <sub alias='x'>y</sub>. Good again."
    done = transcript.done
    assert done is not None
    assert done.metrics["chars_received"] == len("Good <sub alias='x'>y</sub>. Good again.")


async def test_end_inside_a_tag_is_refused_until_the_tag_is_finished(
    server: RunningServer,
) -> None:
    async with connect(server.ws_url, additional_headers=HEADERS, ssml=True) as stream:
        await stream.send_text("Wait <break time=")
        await stream.end()
        await stream.send_text('"1s"/> now.')
        await stream.end()
        transcript = await collect(stream, deadline_s=timeout(60))
    errors = transcript.of(Error)
    assert [(e.code, e.ref) for e in errors] == [("invalid_ssml", "end")]
    assert "at character 5: the tag" in errors[0].message
    assert transcript.kinds()[-1] == "done"


# -- REST ---------------------------------------------------------------------------------------


async def speech(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=timeout(120)) as http:
        return await http.post("/v1/audio/speech", json=body, headers=HEADERS)


async def test_rest_reads_ssml_and_the_lexicon(server: RunningServer) -> None:
    response = await speech(server, {
        "model": "espeak", "input": SSML.replace("Call me", "Call Zorb"), "response_format": "wav",
        "ssml": True, "lexicon": [{"word": "Zorb", "say": "pineapple"}],
    })  # fmt: skip
    assert response.status_code == 200, response.text
    with wave.open(io.BytesIO(response.content)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
        rate = wav.getframerate()
    heard = words(transcribe((pcm / 32768).astype(np.float32), rate))
    assert "office" in heard
    assert "pineapple" in heard  # espeak's "cherry" is heard as "carry" in 6 of 10 runs
    assert "speak" not in heard


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"input": "Hi <speak", "ssml": True}, "input",
         "invalid SSML at character 3: the tag '<speak' is not finished"),
        ({"input": "A & B", "ssml": True}, "input", "invalid SSML at character 2"),
        ({"input": "Hi", "lexicon": [{"word": "Hi"}]}, "lexicon", "lexicon[0]: needs at least"),
        ({"input": "Hi", "ssml": "yes"}, "ssml", "'ssml' must be true or false"),
    ],
)  # fmt: skip
async def test_rest_refuses_malformed_markup_and_lexicons(
    server: RunningServer, body: dict[str, Any], param: str, message: str
) -> None:
    response = await speech(server, {"model": "espeak", **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert message in error["message"]
