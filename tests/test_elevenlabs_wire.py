"""The ElevenLabs wire protocol and character alignment, without sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.elevenlabs_alignment import AlignmentTimes, CharTimeline
from gateway.core.elevenlabs_wire import (
    Alignment,
    ClientMessage,
    WireError,
    audio_message,
    error_message,
    final_message,
    parse_message,
    parse_query,
)

# -- messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"text": " ", "voice_settings": {"stability": 0.5, "speed": 1.1}, "context_id": "a",
          "generation_config": {"chunk_length_schedule": [50, 120]}, "xi_api_key": "k"},
         ClientMessage("a", " ", speed=1.1, schedule=(50, 120), api_key="k")),
        ({"text": "Hello ", "contextId": "b", "try_trigger_generation": True},
         ClientMessage("b", "Hello ", try_trigger_generation=True)),
        ({"context_id": "c", "flush": True}, ClientMessage("c", None, flush=True)),
        ({"context_id": "c", "close_context": True}, ClientMessage("c", close_context=True)),
        ({"close_socket": True}, ClientMessage(close_socket=True)),
        ({"text": ""}, ClientMessage(text="")),
        ({"text": "x", "xi-api-key": "k2", "unknown": 1}, ClientMessage(text="x", api_key="k2")),
        ({"text": "x", "authorization": "Bearer tok"}, ClientMessage(text="x", api_key="tok")),
    ],
)  # fmt: skip
def test_client_messages(body: dict[str, object], expected: ClientMessage) -> None:
    assert parse_message(json.dumps(body)) == expected


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"text": 5}', "text must be a string"),
        ('{"context_id": 5, "text": "x"}', "context_id must be"),
        ('{"flush": "yes"}', "flush must be true or false"),
        ('{"text": " ", "voice_settings": {"speed": 9}}', "voice_settings.speed"),
        ('{"text": " ", "voice_settings": {"stability": "high"}}', "voice_settings.stability"),
        ('{"text": " ", "generation_config": {"chunk_length_schedule": [10]}}', "50-500"),
        ('{"text": " ", "generation_config": {"chunk_length_schedule": []}}', "50-500"),
    ],
)
def test_bad_messages_say_what_is_wrong(frame: str, says: str) -> None:
    with pytest.raises(WireError) as error:
        parse_message(frame)
    assert error.value.code == "invalid_input_message"
    assert says in error.value.message
    assert "Could not parse input message" in error.value.message


def test_query_parameters() -> None:
    query = parse_query({"model_id": "eleven_flash_v2_5", "output_format": "pcm_16000",
                         "auto_mode": "true", "inactivity_timeout": "180", "sync_alignment": "true",
                         "enable_ssml_parsing": "false", "enable_logging": "true",
                         "apply_text_normalization": "auto", "xi_api_key": "key"})  # fmt: skip
    assert (query.model_id, query.output_format, query.auto_mode) == (
        "eleven_flash_v2_5", "pcm_16000", True
    )  # fmt: skip
    assert (query.inactivity_timeout_s, query.sync_alignment, query.api_key) == (180, True, "key")
    defaults = parse_query({})
    assert (defaults.output_format, defaults.inactivity_timeout_s, defaults.auto_mode) == (
        "mp3_44100_128", 20, False
    )  # fmt: skip


@pytest.mark.parametrize(
    ("params", "code", "says"),
    [
        ({"apply_text_normalization": "off"}, "unsupported_feature", "always reads"),
        ({"inactivity_timeout": "500"}, "invalid_parameters", "1 to 180"),
        ({"auto_mode": "maybe"}, "invalid_parameters", "auto_mode must be true or false"),
    ],
)
def test_query_refusals(params: dict[str, str], code: str, says: str) -> None:
    with pytest.raises(WireError) as error:
        parse_query(params)
    assert error.value.code == code
    assert says in error.value.message


def test_server_messages_use_the_services_keys() -> None:
    alignment = Alignment(["H", "i"], [0, 50], [50, 70])
    assert audio_message("QUJD", alignment, alignment, "ctx") == {
        "audio": "QUJD",
        "isFinal": False,
        "alignment": {"chars": ["H", "i"], "charStartTimesMs": [0, 50],
                      "charDurationsMs": [50, 70]},
        "normalizedAlignment": {"chars": ["H", "i"], "charStartTimesMs": [0, 50],
                                "charDurationsMs": [50, 70]},
        "contextId": "ctx",
    }  # fmt: skip
    assert final_message("ctx") == {"isFinal": True, "contextId": "ctx"}
    assert final_message(None) == {"isFinal": True}
    assert error_message("max_active_conversations", "too many", "c6") == {
        "message": "too many", "error": "max_active_conversations", "code": 1008,
        "contextId": "c6",
    }  # fmt: skip


# -- alignment -------------------------------------------------------------------------------------

RATE = 1000  # one sample per millisecond keeps the arithmetic readable


def spoken(text: str, words: list[tuple[int, int, int, int]], segment_start: int = 0,
           times: AlignmentTimes = AlignmentTimes.SPLIT) -> CharTimeline:  # fmt: skip
    timeline = CharTimeline(RATE, times)
    timeline.add_text(text)
    timeline.segment(0, len(text), segment_start)
    timeline.words(
        {"char_start": cs, "char_end": ce, "sample_start": ss, "sample_end": se}
        for cs, ce, ss, se in words
    )
    return timeline


def test_characters_go_out_with_the_audio_their_sound_starts_in() -> None:
    # "Hi there. ": Hi [10, 110), there [300, 400); the ". " after it starts at its end.
    timeline = spoken("Hi there. ", [(0, 2, 10, 110), (3, 8, 300, 400)])
    first, first_context = timeline.take(100)
    assert first is not None
    assert first_context is not None
    assert (first.chars, first.start_ms, first.duration_ms) == (["H", "i"], [10, 60], [50, 40])
    second, second_context = timeline.take(200)
    assert second is not None
    assert second_context is not None
    # The space starts where "Hi" ends and lasts to the end of the message.
    assert (second.chars, second.start_ms, second.duration_ms) == ([" "], [10], [90])
    assert second_context.start_ms == [110]  # from the context's start
    assert timeline.take(250) == (None, None)  # no character starts in [200, 250)
    third, third_context = timeline.take(400)
    assert third is not None
    assert third_context is not None
    assert third.chars == list("there")
    # Times count from the end of the last alignment (200): the message without one is included.
    assert third.start_ms == [100, 120, 140, 160, 180]
    assert third_context.start_ms == [300, 320, 340, 360, 380]
    assert third.start_ms[-1] + third.duration_ms[-1] == 400 - 200
    fourth, _ = timeline.take(500)
    assert fourth is not None
    assert (fourth.chars, fourth.start_ms, fourth.duration_ms) == ([".", " "], [0, 0], [0, 100])
    assert timeline.take(600) == (None, None)
    assert timeline.pending == 0


def test_a_failed_segment_is_left_out_and_the_rest_goes_out_at_the_end() -> None:
    timeline = spoken("Good. Bad. ", [(0, 4, 0, 100)])
    timeline.skip(5, 10)
    alignment, _ = timeline.take(150)
    assert alignment is not None
    assert "".join(alignment.chars) == "Good."
    last, _ = timeline.take(200, everything=True)
    assert last is not None
    assert "".join(last.chars) == " "  # " Bad." failed; the trailing space is not part of it
    assert timeline.pending == 0


@pytest.mark.parametrize("times", list(AlignmentTimes))
def test_time_bases(times: AlignmentTimes) -> None:
    timeline = spoken("One two ", [(0, 3, 0, 100), (4, 7, 200, 300)], times=times)
    timeline.take(150)
    alignment, normalized = timeline.take(400)
    assert alignment is not None
    assert normalized is not None
    from_message, from_context = [50, 83, 116, 150], [200, 233, 266, 300]
    assert alignment.start_ms == (from_context if times is AlignmentTimes.CONTEXT else from_message)
    assert normalized.start_ms == (
        from_message if times is AlignmentTimes.MESSAGE else from_context
    )


@given(
    st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=12),
    st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=20),
)
def test_message_clocks_add_up_and_every_character_goes_out_once(
    word_lengths: list[int], message_lengths: list[int]
) -> None:
    """Whatever the messages, the characters come out once each, in order, with times that
    never go back, and the message clock (last start + duration, added up) is exact."""
    text, words, position = "", [], 0
    for n in word_lengths:
        words.append((len(text), len(text) + n, position, position + 30 * n))
        text += "w" * n + " "
        position += 30 * n + 20
    timeline = spoken(text, words)
    chars: list[str] = []
    clock = end = 0
    previous = -1
    for length in message_lengths:
        end += length
        alignment, normalized = timeline.take(end)
        if alignment is None or normalized is None:
            continue
        assert len(alignment.chars) == len(alignment.start_ms) == len(alignment.duration_ms)
        assert all(d >= 0 for d in alignment.duration_ms)
        assert normalized.start_ms[0] >= previous
        previous = normalized.start_ms[-1]
        assert normalized.start_ms[0] == clock + alignment.start_ms[0]
        clock += alignment.start_ms[-1] + alignment.duration_ms[-1]
        assert clock == end
        chars += alignment.chars
    rest, _ = timeline.take(end, everything=True)
    chars += rest.chars if rest is not None else []
    assert "".join(chars) == text


def test_a_long_context_keeps_only_what_it_has_not_sent() -> None:
    """Thousands of characters, words arriving as their segments start, messages of 40 ms:
    every character goes out once, in order, and the sent ones are not kept."""
    timeline = CharTimeline(RATE)
    sent: list[str] = []
    text = ""
    for segment in range(200):
        sentence = f"Sentence {segment} is here. "
        start, position = len(text), segment * 1000
        text += sentence
        timeline.add_text(sentence)
        timeline.segment(start, len(text), position)
        words, offset = [], start
        for word in sentence.split():
            offset = text.index(word, offset)
            words.append({"char_start": offset, "char_end": offset + len(word.strip(".")),
                          "sample_start": position, "sample_end": position + 200})  # fmt: skip
            offset += len(word)
            position += 250
        timeline.words(words)
        for end in range(segment * 1000 + 40, segment * 1000 + 1001, 40):
            alignment, _ = timeline.take(end)
            sent += alignment.chars if alignment is not None else []
    assert "".join(sent) == text
    assert timeline.pending == 0
    assert timeline.held < 300  # the characters sent are forgotten


def test_enable_ssml_parsing_asks_for_ssml() -> None:
    assert parse_query({"enable_ssml_parsing": "true"}).ssml
    assert not parse_query({}).ssml
