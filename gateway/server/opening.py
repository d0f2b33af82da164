"""The one way every edge opens a session: the backend, voice and language a client asked for,
checked against the running gateway (:func:`resolve_stream`), and the speaker that serves it
(:func:`open_speaker`). Refusals are :class:`~gateway.core.errors.ProtocolError`; each edge
turns them into its own answer (an ``error`` message, an HTTP status).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gateway.audio.codecs import (
    FrameEncoder,
    G711Encoder,
    G711Law,
    OpusEncoder,
    OpusOptions,
    Pcm16Encoder,
)
from gateway.audio.framing import AudioOut
from gateway.backends.base import Backend
from gateway.config import AudioSettings
from gateway.core.errors import ErrorCode, ProtocolError, UnknownVoiceError
from gateway.core.lexicon import parse_entries
from gateway.core.metrics import SessionMetrics
from gateway.core.protocol import AudioFormat
from gateway.core.reading import ReadingRules
from gateway.core.session import Session
from gateway.server.gateway import Gateway
from gateway.speech.delivery import AudioSink
from gateway.speech.speaker import Send, Speaker
from gateway.speech.synthesis import StreamSettings

__all__ = ["frame_encoder", "open_speaker", "resolve_stream", "resolve_voice"]


async def resolve_stream(
    gateway: Gateway,
    *,
    backend: str | None,
    voice: str | None,
    lang: str | None,
    speed: float | None,
    format: AudioFormat | None = None,
    bitrate: int | None = None,
    frame_ms: int | None = None,
    sample_rate: int | None = None,
    instructions: str = "",
    aliases: Mapping[str, str] | None = None,
    aliases_setting: str = "voice aliases",
    key_id: str | None = None,
    lexicon: Sequence[Mapping[str, str]] = (),
) -> StreamSettings:
    """What a client asked for, with the gateway's defaults; ProtocolError names what cannot
    be served (``unknown_backend``, ``backend_unavailable``, ``unknown_voice``,
    ``unsupported_language``). Waits for a backend that is still loading. ``sample_rate`` (Hz)
    is the stream's, checked by the edge against its format's rates.

    The text is read with the gateway's normalization settings and lexicon layers: the
    session's ``lexicon`` (already validated), then the one of the caller's key (``key_id``),
    then the gateway's."""
    audio = gateway.config.audio
    reading = gateway.config.reading
    session_entries = parse_entries("lexicon", lexicon)
    rules = ReadingRules(reading.normalization, reading.lexicon_for(key_id, session_entries))
    chosen = await gateway.ready_backend(backend or gateway.config.session.default_backend)
    return StreamSettings(
        backend=chosen,
        voice=resolve_voice(chosen, voice, aliases or {}, aliases_setting),
        lang=resolve_lang(chosen, lang),
        speed=1.0 if speed is None else speed,
        format=format or audio.format,
        bitrate=bitrate or audio.bitrate,
        frame_ms=frame_ms or audio.frame_ms,
        instructions=instructions,
        sample_rate=sample_rate or audio.sample_rate,
        rules=rules,
    )


def resolve_voice(
    backend: Backend, asked: str | None, aliases: Mapping[str, str], aliases_setting: str = ""
) -> str:
    """The voice ``asked`` selects on ``backend`` (its default when None): a voice of the
    backend (or a blend, where it mixes), else what ``aliases`` (the setting named
    ``aliases_setting``) maps it to."""
    name = asked or backend.default_voice
    try:
        return backend.resolve_voice(name)
    except UnknownVoiceError as error:
        alias = aliases.get(name)
        if alias is None:
            raise ProtocolError(ErrorCode.UNKNOWN_VOICE, str(error)) from None
        try:
            return backend.resolve_voice(alias)
        except UnknownVoiceError as aliased:
            message = f"{name!r} maps to {alias!r} ({aliases_setting}): {aliased}"
            raise ProtocolError(ErrorCode.UNKNOWN_VOICE, message) from None


def resolve_lang(backend: Backend, asked: str | None) -> str:
    """The language ``asked`` (the backend's default when None), if the backend reads it."""
    lang = asked or backend.default_lang
    if lang not in backend.languages:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_LANGUAGE,
            f"language {lang!r} is not supported by {backend.name!r}; languages: "
            + ", ".join(backend.languages),
        )
    return lang


def frame_encoder(audio: AudioSettings, stream: StreamSettings) -> FrameEncoder:
    """The frame encoder of the stream's format, at the stream's sample rate."""
    rate = stream.sample_rate
    match stream.format:
        case AudioFormat.PCM16:
            return Pcm16Encoder(sample_rate=rate, frame_ms=stream.frame_ms)
        case AudioFormat.ULAW | AudioFormat.ALAW:
            law = G711Law(stream.format.value)
            return G711Encoder(law, sample_rate=rate, frame_ms=stream.frame_ms)
    return OpusEncoder(
        OpusOptions(
            sample_rate=rate,
            frame_ms=stream.frame_ms,
            bitrate=stream.bitrate,
            vbr=audio.vbr.value,
            application=audio.application.value,
            complexity=audio.complexity,
        )
    )


def open_speaker(
    gateway: Gateway,
    session: Session,
    stream: StreamSettings,
    *,
    encoder: FrameEncoder,
    sink: AudioSink,
    send: Send,
    metrics: SessionMetrics,
    log: logging.LoggerAdapter[logging.Logger],
    short_first_segment: bool | None = None,
    ssml: bool = False,
    paced: bool = True,
    stop_on_error: bool = False,
) -> Speaker:
    """Start ``session`` with the gateway's segmenting rules for its backend (its text read
    as SSML with ``ssml``), and the speaker that speaks it (its run loop is the caller's to
    start)."""
    services = gateway.speech
    rules = services.segmenter_rules(stream.backend, short_first_segment=short_first_segment)
    session.begin(rules, ssml=ssml)
    return Speaker(
        services=services,
        session=session,
        stream=stream,
        audio=AudioOut(encoder),
        sink=sink,
        send=send,
        metrics=metrics,
        log=log,
        paced=paced,
        stop_on_error=stop_on_error,
    )
