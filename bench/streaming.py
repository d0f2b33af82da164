"""Streaming inside a sentence (Kokoro): first sound, gapless playback, silences inside clauses,
and the gateway's CPU against direct whole-sentence synthesis.

    python -m bench.suite --parts streaming [--quick]

Each run opens a session on a gateway process (config.toml) and sends a text either as LLM
tokens at 40 tokens/s or whole, and records every frame's arrival. From those:

- time to first audio: from sending the token that completed the first segment (the first
  clause) to its first frame (text sent whole: from sending it);
- gapless start: the earliest moment, after the text was sent, from which a real-time player
  would never run dry: the latest ``arrival - send - sample_start / rate`` over every frame; its
  ratio to the time to first audio says how long a player must wait beyond the first sound;
- underruns: a listener (:class:`bench.listener.Listener`) that starts at the first frame;
- silences inside clauses: the audio as that listener hears it (the Opus frames decoded, with
  the silence of every underrun inserted where it happened), and between each two words of one
  clause (no punctuation between them) the longest stretch under -45 dBFS (10 ms frames).
  A cut inside a clause that leaves the listener waiting shows here, as well as a pause in the
  audio itself (:func:`clause_silences`). The target is on the silence *added* to what the
  model says when it decodes each sentence whole (:func:`own_pauses`): some voices pause
  inside a clause by themselves (the default voice holds 0.41 s between "dog" and "near" in
  the short sentence, whole or windowed), and that is the voice, not the streaming.

The CPU ratio: the gateway process's CPU seconds per second of audio delivered, for the
paragraph sent whole, over the CPU of synthesizing the same text sentence by sentence directly
with the whole-pass Kokoro backend (``windowed = false``) in this process. The two alternate,
one session then one direct synthesis, and the figure is the median of the pairs' ratios: the
machine's speed drifts by 10-20 % over a minute (the same direct synthesis, repeated, took
0.38 to 0.45 CPU s per audio second), and a ratio of two sums taken a minute apart measured
that drift as much as the gateway.
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from bench.listener import DEFAULT_TOLERANCE_S
from bench.process import GatewayProcess
from bench.report import percentile
from gateway.audio.codecs import OpusDecoder
from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.settings import KokoroOnnxSettings
from gateway.core.protocol import Audio, Done, SegmentStart, Words
from gateway.core.segmenter import Segment, Segmenter
from tts_gateway_client import connect
from tts_gateway_client.say import completing_send, simulated_llm

__all__ = [
    "PARAGRAPH",
    "SHORT",
    "ClauseGap",
    "Trace",
    "added_silence_s",
    "clause_silences",
    "gapless_start_s",
    "heard_audio",
    "own_pauses",
    "report",
    "streaming_figures",
]

# A 12-word sentence, and a paragraph whose first clause is long (a listener who starts early
# must be kept fed through the rest of it).
SHORT: Final = "The quick brown fox jumps over the lazy dog near the river bank."
PARAGRAPH: Final = (
    "Streaming speech synthesis is a balancing act, because the listener wants to hear the "
    "first word as soon as possible. The voice should still sound natural, with the melody of "
    "a whole sentence rather than a string of disconnected fragments. That is why the prosody "
    "of the entire sentence comes first, and only then the waveform, piece by piece."
)
SILENCE_DB: Final = -45.0
# What ends a clause: punctuation, the ellipsis, both dashes, a line break.
_CLAUSE_MARKS: Final = re.compile("[,;:.!?\u2026\u2013\u2014\n]")


@dataclass
class Trace:
    """One session as the client saw it."""

    text: str
    sent_at: float  # when the first text went out
    trigger_at: float  # when the message that completed the first segment went out
    sample_rate: int
    frame_samples: int
    arrivals: list[tuple[float, int, bytes]] = field(default_factory=list)  # at, start, data
    words: dict[int, dict[str, Any]] = field(default_factory=dict)  # by char_start, last kept
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ttfa_s(self) -> float:
        return self.arrivals[0][0] - self.trigger_at


async def session_trace(url: str, text: str, tokens_per_s: float | None) -> Trace:
    """``text`` through one Kokoro session: as tokens at ``tokens_per_s``, or whole (None)."""
    async with connect(url, backend="kokoro") as stream:
        sent_at = time.monotonic()
        stream.feed(simulated_llm(text, tokens_per_s) if tokens_per_s else [text])
        ready = stream.ready
        trace = Trace(text, sent_at, sent_at, ready.sample_rate, ready.frame_samples)
        first: SegmentStart | None = None
        async for message in stream:
            if isinstance(message, Audio):
                trace.arrivals.append((time.monotonic(), message.sample_start, message.data))
            elif isinstance(message, Words):
                trace.words.update({word["char_start"]: word for word in message.words})
            elif isinstance(message, SegmentStart) and first is None:
                first = message
            elif isinstance(message, Done):
                trace.metrics = message.metrics
        trigger = None if first is None else completing_send(stream.sent, first)
        if trigger is None or not trace.arrivals:
            raise RuntimeError(f"the session ended without audio (close {stream.close_code})")
        trace.trigger_at = trigger.at if tokens_per_s else sent_at
        return trace


def gapless_start_s(trace: Trace) -> float:
    """The earliest start, after the text was sent, from which playing in real time never
    waits for a frame."""
    rate = trace.sample_rate
    return max(at - trace.sent_at - start / rate for at, start, _ in trace.arrivals)


@dataclass(frozen=True)
class Heard:
    """The audio as a real-time listener hears it, underrun silences included."""

    pcm: NDArray[np.float32]
    underruns: int
    stall_s: float
    stalls: list[tuple[int, int]]  # (timeline sample where it happened, samples of silence)

    def position(self, sample: int) -> int:
        """Where timeline ``sample`` is heard (after the stalls before it)."""
        return sample + sum(length for at, length in self.stalls if at <= sample)


def heard_audio(trace: Trace, *, tolerance_s: float = DEFAULT_TOLERANCE_S) -> Heard:
    """Decode the frames and play them from the first one in real time; a frame later than its
    turn (beyond ``tolerance_s``) makes the listener wait in silence."""
    decoder, rate = OpusDecoder(trace.sample_rate), trace.sample_rate
    parts = [decoder.decode(data) for _, _, data in trace.arrivals]
    timeline = np.concatenate([*parts, decoder.finish()])
    origin = trace.arrivals[0][0] - trace.arrivals[0][1] / rate
    stalls: list[tuple[int, int]] = []
    for at, start, _ in trace.arrivals:
        late = at - (origin + start / rate)
        if late > tolerance_s:
            stalls.append((start, round(late * rate)))
            origin += late
    pieces, previous = [], 0
    for at_sample, length in stalls:
        pieces += [timeline[previous:at_sample], np.zeros(length, np.float32)]
        previous = at_sample
    pieces.append(timeline[previous:])
    stall_s = sum(length for _, length in stalls) / rate
    return Heard(np.concatenate(pieces), len(stalls), stall_s, stalls)


@dataclass(frozen=True, slots=True)
class ClauseGap:
    """The longest silence heard between two consecutive words of one clause."""

    before: str
    after: str
    char_start: int  # of the word before, in the trace's text
    silence_s: float


def clause_silences(trace: Trace, heard: Heard) -> list[ClauseGap]:
    """For each two consecutive words of one clause: the words and the longest silence heard
    between them, where the end of one and the start of the next are measured by the
    gateway's word timings, widened by 50 ms each side."""
    rate, text = trace.sample_rate, trace.text
    words = [trace.words[start] for start in sorted(trace.words)]
    found = []
    for before, after in itertools.pairwise(words):
        if _CLAUSE_MARKS.search(text[before["char_end"] : after["char_start"]]):
            continue
        a = heard.position(before["sample_end"]) - rate // 20
        b = heard.position(after["sample_start"]) + rate // 20
        silence_s = longest_silence_s(heard.pcm[a:b], rate)
        found.append(ClauseGap(before["text"], after["text"], before["char_start"], silence_s))
    return found


def added_silence_s(gaps: Sequence[ClauseGap], own: dict[int, float]) -> float:
    """The longest silence inside a clause beyond the model's own pause there (``own``: by
    the char_start of the word before, as :func:`own_pauses` gives)."""
    return max((g.silence_s - own.get(g.char_start, 0.0) for g in gaps), default=0.0)


def longest_silence_s(
    pcm: NDArray[np.float32], rate: int, *, level_db: float = SILENCE_DB
) -> float:
    """The longest run of 10 ms frames under ``level_db`` (dBFS RMS), in seconds."""
    frame = rate // 100
    threshold = 10 ** (level_db / 20)
    longest = run = 0
    for start in range(0, len(pcm) - frame + 1, frame):
        quiet = float(np.sqrt(np.mean(pcm[start : start + frame] ** 2))) < threshold
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    return longest * frame / rate


def _sentences(text: str) -> list[Segment]:
    segmenter = Segmenter()
    return [s for s in [*segmenter.push(text), *segmenter.finish()] if not s.blank]


async def own_pauses(backend: KokoroOnnxBackend, text: str) -> dict[int, float]:
    """The model's own pauses inside clauses: each sentence of ``text`` decoded whole by
    ``backend`` (the whole-pass one), and between each two words of one clause the longest
    silence, measured as :func:`clause_silences` does, by the char_start of the word before."""
    rate, pauses = 24000, {}
    for sentence in _sentences(text):
        request = SynthesisRequest(sentence.text, backend.default_voice, "en-us", 1.0)
        chunks = [chunk async for chunk in backend.synthesize(request)]
        pcm = np.concatenate([chunk.pcm for chunk in chunks])
        words = [word for chunk in chunks for word in chunk.words]
        for before, after in itertools.pairwise(words):
            if _CLAUSE_MARKS.search(sentence.text[before.char_end : after.char_start]):
                continue
            a, b = before.sample_end - rate // 20, after.sample_start + rate // 20
            pauses[sentence.start + before.char_start] = longest_silence_s(pcm[a:b], rate)
    return pauses


async def direct_cpu_per_audio_s(backend: KokoroOnnxBackend, text: str, reps: int) -> float:
    """CPU seconds per audio second of ``text``'s sentences synthesized whole, each in one pass
    of ``backend`` (the whole-pass one), in this process (the reference of the CPU ratio)."""
    sentences = [s.text for s in _sentences(text)]
    cpu = audio = 0.0
    for _ in range(reps):
        started = time.process_time()
        for sentence in sentences:
            request = SynthesisRequest(sentence, backend.default_voice, "en-us", 1.0)
            async for chunk in backend.synthesize(request):
                audio += len(chunk.pcm) / 24000
        cpu += time.process_time() - started
    return cpu / audio


async def streaming_figures(gateway: GatewayProcess, *, runs: int, reps: int) -> dict[str, Any]:
    """Every figure of the module docstring, ``runs`` sessions per text and way of sending."""
    direct = KokoroOnnxBackend("direct", KokoroOnnxSettings(windowed=False))
    await direct.load()
    try:
        return await _measured(gateway, direct, runs=runs, reps=reps)
    finally:
        await direct.aclose()


async def _measured(
    gateway: GatewayProcess, direct: KokoroOnnxBackend, *, runs: int, reps: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, text in (("short", SHORT), ("paragraph", PARAGRAPH)):
        own = await own_pauses(direct, text)
        for mode, rate in (("tokens", 40.0), ("whole", None)):
            traces = [await session_trace(gateway.url, text, rate) for _ in range(runs)]
            results[f"{name}/{mode}"] = _figures(traces, own)
    pairs = [await _cpu_pair(gateway, direct) for _ in range(reps)]
    results["cpu"] = {
        "gateway_per_audio_s": statistics.median(g for g, _ in pairs),
        "direct_per_audio_s": statistics.median(d for _, d in pairs),
        "ratio": statistics.median(g / d for g, d in pairs),
        "pairs": len(pairs),
    }
    return results


async def _cpu_pair(gateway: GatewayProcess, direct: KokoroOnnxBackend) -> tuple[float, float]:
    """CPU seconds per audio second of the paragraph: one gateway session, then directly."""
    cpu_before = gateway.cpu_seconds()
    trace = await session_trace(gateway.url, PARAGRAPH, None)
    gateway_cpu = (gateway.cpu_seconds() - cpu_before) / (trace.metrics["audio_ms"] / 1000)
    return gateway_cpu, await direct_cpu_per_audio_s(direct, PARAGRAPH, 1)


def _figures(traces: Sequence[Trace], own: dict[int, float]) -> dict[str, Any]:
    ttfa = [t.ttfa_s * 1000 for t in traces]
    gapless = [gapless_start_s(t) * 1000 for t in traces]
    first_audio = [(t.arrivals[0][0] - t.sent_at) * 1000 for t in traces]
    heard = [heard_audio(t) for t in traces]
    gaps = [clause_silences(t, h) for t, h in zip(traces, heard, strict=True)]
    return {
        "runs": len(traces),
        "ttfa_ms": {"median": statistics.median(ttfa), "p95": percentile(ttfa, 95)},
        "gapless_over_first_audio": statistics.median(
            g / f for g, f in zip(gapless, first_audio, strict=True)
        ),
        "gapless_ms": statistics.median(gapless),
        "underruns": sum(h.underruns for h in heard),
        "longest_clause_silence_s": max(
            max((g.silence_s for g in run), default=0.0) for run in gaps
        ),
        "longest_added_silence_s": max(added_silence_s(run, own) for run in gaps),
    }


def report(result: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    lines = [
        "| text, sent as | TTFA median / p95, ms | gapless start / first audio | underruns "
        "| longest silence in a clause: heard / beyond the model's own |",
        "|---|---|---|---|---|",
    ]
    for key, r in result.items():
        if key == "cpu":
            continue
        lines.append(
            f"| {key} | {r['ttfa_ms']['median']:.0f} / {r['ttfa_ms']['p95']:.0f} "
            f"| {r['gapless_over_first_audio']:.2f} ({r['gapless_ms']:.0f} ms) "
            f"| {r['underruns']} | {r['longest_clause_silence_s'] * 1000:.0f} ms / "
            f"{r['longest_added_silence_s'] * 1000:.0f} ms |"
        )
    cpu = result["cpu"]
    lines += [
        "",
        f"Gateway CPU per second of Kokoro audio: {cpu['gateway_per_audio_s']:.3f} s, direct "
        f"whole-sentence synthesis {cpu['direct_per_audio_s']:.3f} s (medians): ratio "
        f"{cpu['ratio']:.2f} (median of {cpu.get('pairs', 1)} interleaved pairs).",
    ]
    return "\n".join(lines)
