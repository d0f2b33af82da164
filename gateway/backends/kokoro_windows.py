"""Decoding one Kokoro model pass window by window (the graphs: :mod:`.kokoro_graphs`).

The front runs once per pass (:func:`run_front`): durations, the generator's input and F0 for
the whole sentence, so prosody is the sentence's. The generator then decodes it in windows of
80 Hz frames (:class:`Window`), each with context on both sides: :data:`CONTEXT` frames for the
float32 generator (its measured reach is 11.3), so the joined windows are the whole decode bit
for bit; :data:`INT8_CONTEXT` for the int8 one, whose windows each have their own
activation-quantization noise anyway (dynamic quantization takes a tensor's range per run): the
frames beyond 8 change an edge sample by at most 0.3 % of the window's peak, against a median
of 9-12 % for that noise (both measured over :data:`CALIBRATION_TEXTS`, every 37 frames).
:class:`Joiner` crossfades 4 ms around each int8 join from samples both windows decoded
anyway. A pass's first window, which starts in the silent pad before the first word, needs
only :data:`PAD_CONTEXT` frames before it: the generator's input is flat there.

The generator's norm statistics are fixed per voice (:class:`NormStats`): calibrated over a few
sentences with the probe graph, cached on disk, mixed with the blend's weights for a blend.

Units: a frame is 300 samples at 24 kHz (:data:`HOP`); a duration frame is 2 frames.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from gateway.backends.kokoro_graphs import (
    HARMONICS,
    HOP,
    Precision,
    inference_session,
    save_atomically,
    split_model,
)
from gateway.backends.kokoro_phonemes import ONSET_REACH
from gateway.core.chunks import AudioChunk

__all__ = [
    "CALIBRATION_TEXTS",
    "CONTEXT",
    "CROSSFADE",
    "INT8_CONTEXT",
    "PAD_CONTEXT",
    "FrontPass",
    "Joiner",
    "ListenerClock",
    "NormStats",
    "Window",
    "WindowedModel",
    "decode_window",
    "first_decoded_frame",
    "heard_s",
    "run_front",
    "snapped_end",
    "source_phase",
]

log = logging.getLogger(__name__)

CONTEXT: Final = 12  # frames of context each side (150 ms); the generator reaches 11.3
INT8_CONTEXT: Final = 8  # the same for int8 windows (see the module docstring)
# Left context of a window that starts in the pad before a pass's first word: 3 already give
# the whole decode there within 1e-4 (0 gives a click of 0.1).
PAD_CONTEXT: Final = 4
CROSSFADE: Final = 96  # samples (4 ms) blended at each join of int8 windows
SAMPLE_RATE: Final = 24000
_AUDIO: Final = "audio"
# Window sizes, in frames: a pass shorter than WHOLE_BELOW is one window; a tail shorter than
# SMALLEST joins the window before; no window is longer than LARGEST, or LARGEST_BUSY while other
# jobs wait for the model (a window cannot be interrupted, and a session about to start waits).
_WHOLE_BELOW: Final = 64
_SMALLEST: Final = 16
_LARGEST: Final = 480
_LARGEST_BUSY: Final = 160
# A window after the first is sized to be decoded within this share of the time before the
# listener runs out of the audio sent so far.
_SAFETY: Final = 0.5
# What the voices' statistics are calibrated on: varied English sentences, short and long.
CALIBRATION_TEXTS: Final = (
    "I think we should leave early tomorrow morning, before the traffic gets bad.",
    "She looked out of the window and watched the rain fall on the empty street.",
    "Why would anyone build a house so close to the edge of the cliff?",
    "Turn left at the second traffic light, then keep going until you see the bakery.",
    "Could you send me the report by Friday afternoon?",
    "Okay, let's get started.",
    "Thank you very much for your patience; an agent will be with you shortly.",
    "Wow! That is absolutely incredible!",
)


@dataclass(frozen=True, slots=True)
class FrontPass:
    """What the front computed for one model pass (the generator's inputs for all of it)."""

    durations: NDArray[np.int64]  # per token, pads included, in 600-sample duration frames
    x: NDArray[np.float32]  # [1, 512, frames]
    f0: NDArray[np.float32]  # [1, frames]
    style: NDArray[np.float32]  # [1, 256]
    phase: NDArray[np.float64]  # [frames, 9]: the source's running phase

    @property
    def frames(self) -> int:
        return int(self.f0.shape[1])

    @property
    def samples(self) -> int:
        return self.frames * HOP


def run_front(
    session: ort.InferenceSession,
    tokens: Sequence[int],
    style: NDArray[np.float32],
    speed: float,
    run_options: ort.RunOptions | None = None,
) -> FrontPass:
    """The front of one pass (``tokens`` without the pads; ``style`` the voice's row, [1, 256])."""
    durations, x, f0 = session.run(
        ["durations", "x", "f0"],
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style,
            "speed": np.array([speed], dtype=np.float32),
        },
        run_options,
    )
    return FrontPass(np.asarray(durations, np.int64).ravel(), x, f0, style, source_phase(f0[0]))


def source_phase(f0: NDArray[np.float32]) -> NDArray[np.float64]:
    """The harmonic source's running phase as the graph's ``CumSum`` computes it: frame i holds
    the sum over frames <= i of frac(f0 * k / 24000), k = 1..9, in float64 (the increments in
    float32, as the graph makes them). The generator scales it by 2*pi*300 and interpolates it
    to samples."""
    harmonics = np.arange(1, HARMONICS + 1, dtype=np.float32)
    increments = (f0.astype(np.float32)[:, None] * harmonics[None, :]) / np.float32(SAMPLE_RATE)
    steps = increments.astype(np.float64)
    steps -= np.floor(steps)
    return np.cumsum(steps, axis=0)


@dataclass(slots=True)
class ListenerClock:
    """When the listener of one request runs out of its audio: it held ``buffered_s`` when
    the request was made at ``started`` (``time.monotonic``; None: unknown, ``deadline`` plus
    what was sent is used) and plays the request's audio from its first chunk on."""

    started: float
    deadline: float | None
    buffered_s: float | None
    sent_s: float = 0.0
    first_at: float | None = None

    def sent(self, seconds: float, at: float) -> None:
        """``seconds`` more of the request's audio went out at ``at``."""
        if self.first_at is None and seconds > 0:
            self.first_at = at
        self.sent_s += seconds

    @property
    def waiting(self) -> bool:
        """Whether the listener held no audio when the request was made (a new turn, or one
        that ran dry): nothing plays while its first window is decoded."""
        return not self.buffered_s

    def due(self) -> float | None:
        """When the listener will have played everything sent so far (before anything was
        sent: the request's deadline)."""
        if self.first_at is None or self.buffered_s is None:
            return None if self.deadline is None else self.deadline + self.sent_s
        return max(self.started + self.buffered_s, self.first_at) + self.sent_s


def first_decoded_frame(first_word_start: int) -> int:
    """The first frame of a pass that is decoded, given where its first word's span starts (in
    samples). The pad before it is silence (the seams trim it): it is zeros up to 8 frames
    before where the onset search for the first word begins (with 2, a fast first word lost
    its start: "The" went unheard at speed 1.25)."""
    return max(0, (first_word_start - ONSET_REACH) // HOP - 8)


def heard_s(chunk: AudioChunk, *, first: bool) -> float:
    """The seconds of ``chunk`` a listener hears: all of it, but in a request's ``first``
    chunk not the pad before its first word (the seams trim it)."""
    samples = len(chunk.pcm)
    if first and chunk.words:
        samples -= min(samples, chunk.words[0].sample_start)
    return samples / SAMPLE_RATE


def snapped_end(planned: int, start: int, word_ends: Sequence[int], frames: int) -> int:
    """A window sized from frame ``start`` (for a request's first window: its first word's
    start, not the window's first frame) and planned to end at frame ``planned``, moved to a
    word's end (so no word straddles two windows): the last word end in the planned window's
    second half, else the first one after it (within half a window more), else ``planned``. A
    pass's first window (wherever it starts) always holds its first word (its first chunk then
    carries a word, sent before it)."""
    if planned >= frames:
        return frames
    half = (planned - start) // 2
    inside = [e for e in word_ends if start + half <= e <= planned]
    after = [e for e in word_ends if planned < e <= planned + half]
    end = inside[-1] if inside else after[0] if after else planned
    if word_ends and end < word_ends[0]:
        end = word_ends[0]
    return min(end, frames)


@dataclass(frozen=True, slots=True)
class Window:
    """Frames ``[start, end)`` of a pass, decoded from ``[context_start, context_end)``."""

    start: int
    end: int
    context_start: int
    context_end: int

    @classmethod
    def of(
        cls, start: int, end: int, frames: int, *, context: int = CONTEXT, left: int | None = None
    ) -> Window:
        """Frames ``[start, end)`` of a pass of ``frames``, with ``context`` frames each side
        (``left`` before it, if given; less at the pass's ends, where the whole decode has its
        own edges)."""
        before = context if left is None else left
        return cls(start, end, max(0, start - before), min(frames, end + context))

    @property
    def decoded_frames(self) -> int:
        """Frames the generator runs over, context included (what a window costs)."""
        return self.context_end - self.context_start


def decode_window(
    session: ort.InferenceSession,
    front: FrontPass,
    norm_stats: NDArray[np.float32],
    window: Window,
    run_options: ort.RunOptions | None = None,
) -> NDArray[np.float32]:
    """The samples of ``[context_start, context_end)`` (context not trimmed: see Joiner)."""
    a, b = window.context_start, window.context_end
    # The phase as float32 values of the pass's running phase, the same in every window, so
    # overlapping windows see identical inputs.
    (audio,) = session.run(
        [_AUDIO],
        {
            "x": np.ascontiguousarray(front.x[:, :, a:b]),
            "f0": np.ascontiguousarray(front.f0[:, a:b]),
            "phase": front.phase[a:b][None].astype(np.float32),
            "style": front.style,
            "norm_stats": norm_stats,
        },
        run_options,
    )
    decoded = np.asarray(audio, dtype=np.float32).ravel()
    if len(decoded) != (b - a) * HOP:
        raise ValueError(f"the generator returned {len(decoded)} samples for {b - a} frames")
    return decoded


class Joiner:
    """Joins a pass's decoded windows into its audio: trims each window's context and, with
    ``crossfade`` samples (even), blends the two decodes around each join from samples both
    windows decoded as context (no extra compute: each window's last ``crossfade // 2`` samples
    wait for the next). The joined audio has the pass's exact length."""

    def __init__(self, crossfade: int = 0, *, sample_start: int = 0) -> None:
        self._half = crossfade // 2
        half = self._half
        steps = (np.arange(2 * half) + 0.5) / max(1, 2 * half)
        self._ramp = (0.5 - 0.5 * np.cos(np.pi * steps)).astype(np.float32)
        self._held: NDArray[np.float32] | None = None  # the last window's end over the blend
        self.sample_end = sample_start  # samples of the pass joined so far (those before
        # ``sample_start`` are not decoded: the caller fills them)

    def join(self, window: Window, decoded: NDArray[np.float32], *, last: bool) -> Joined:
        """The audio ``window`` adds to the pass (``decoded``: from :func:`decode_window`)."""
        half, held = self._half, self._held
        lo = (window.start - window.context_start) * HOP
        hi = (window.end - window.context_start) * HOP
        body = decoded[lo - (half if held is not None else 0) : hi - (0 if last else half)].copy()
        if held is not None:
            body[: 2 * half] = held * (1 - self._ramp) + body[: 2 * half] * self._ramp
        self._held = decoded[hi - half : hi + half].copy() if half and not last else None
        start = self.sample_end
        self.sample_end += len(body)
        return Joined(body, start)


@dataclass(frozen=True, slots=True)
class Joined:
    """Audio of the pass from sample ``sample_start`` on."""

    audio: NDArray[np.float32]
    sample_start: int


class NormStats:
    """The generator's fixed norm statistics of each voice (a ``[size]`` float32 vector).

    Calibrated once per voice (whole decodes of :data:`CALIBRATION_TEXTS` through the probe
    graph: seconds of CPU) and cached in ``cache`` under ``key`` and the voice pack's digest,
    so a restart reads them back. A blend uses the
    blend's weighted mix of its voices' statistics (measured as good as the blend's own).
    Thread-safe for the backend's use: computed in the model's threads, read on the loop.
    """

    def __init__(self, *, size: int, cache: Path, key: str) -> None:
        self._size = size
        self._cache = cache
        self._key = key
        self._stats: dict[str, NDArray[np.float32]] = {}

    def load(
        self,
        voices: dict[str, NDArray[np.float32]],
        calibrate: Callable[[NDArray[np.float32]], NDArray[np.float32]],
    ) -> None:
        """Make every voice's statistics ready: from the cache, else ``calibrate(pack)``."""
        for name, pack in voices.items():
            if name not in self._stats:
                self._stats[name] = self._cached_or_calibrated(name, pack, calibrate)

    def of(self, parts: Sequence[tuple[str, float]]) -> NDArray[np.float32]:
        """The statistics of a voice or blend: ``parts`` are its voices and weights."""
        if len(parts) == 1:
            return self._stats[parts[0][0]]
        mixed = sum(weight * self._stats[voice].astype(np.float64) for voice, weight in parts)
        return np.asarray(mixed, dtype=np.float32)

    def _cached_or_calibrated(
        self,
        name: str,
        pack: NDArray[np.float32],
        calibrate: Callable[[NDArray[np.float32]], NDArray[np.float32]],
    ) -> NDArray[np.float32]:
        digest = hashlib.sha256(np.ascontiguousarray(pack).tobytes()).hexdigest()[:12]
        path = self._cache / f"{self._key}-stats-{name}-{digest}.npy"
        if path.is_file():
            stats: NDArray[Any] = np.load(path)
            if stats.shape == (self._size,):
                return stats.astype(np.float32)
        log.info("kokoro: calibrating the generator's statistics of voice %s", name)
        stats = calibrate(pack)
        if stats.shape != (self._size,):
            raise ValueError(f"calibrated {stats.shape} statistics, expected ({self._size},)")
        self._cache.mkdir(parents=True, exist_ok=True)
        save_atomically(path, _npy_bytes(stats))
        return stats


def calibrate_stats(
    front: ort.InferenceSession,
    probe: ort.InferenceSession,
    styles: Sequence[NDArray[np.float32]],
    token_lists: Sequence[Sequence[int]],
) -> NDArray[np.float32]:
    """A voice's fixed norm statistics: the mean, over whole decodes of the calibration passes
    (``token_lists``, each with the voice's ``styles`` row), of each norm's statistics."""
    runs = []
    for tokens, style in zip(token_lists, styles, strict=True):
        result = run_front(front, tokens, style, 1.0)
        outputs = probe.run(
            None,
            {"x": result.x, "f0": result.f0, "phase": result.phase[None].astype(np.float32),
             "style": result.style},
        )  # fmt: skip
        runs.append(np.concatenate([np.asarray(o, np.float64).ravel() for o in outputs[1:]]))
    mean: NDArray[np.float32] = np.mean(runs, axis=0).astype(np.float32)
    return mean


def _npy_bytes(array: NDArray[Any]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


class WindowedModel:
    """The split graphs of one Kokoro model, ready to decode passes window by window: a front
    and a generator session per thread count, the voices' statistics, and the measured cost of
    a decoded frame that sizes the windows (:meth:`next_end`)."""

    def __init__(
        self,
        *,
        fronts: dict[int, ort.InferenceSession],
        generators: dict[int, ort.InferenceSession],
        probe: Callable[[], ort.InferenceSession],
        stats: NormStats,
        crossfade: int,
        first_frames: int,
        context: int = CONTEXT,
    ) -> None:
        self.fronts = fronts
        self.generators = generators
        self._probe = probe
        self.stats = stats
        self.crossfade = crossfade
        self.context = context
        self._first = first_frames
        # Seconds per decoded frame by the cores a job had, learned from every window.
        self._frame_s: dict[int, float] = {}

    @classmethod
    def load(
        cls,
        model: Path,
        cache: Path,
        *,
        precision: Precision,
        first_window_ms: int,
        thread_counts: Sequence[int],
        spin_wait: bool = False,
    ) -> WindowedModel:
        """Split ``model`` (cached in ``cache``) and open its sessions (blocking: seconds)."""
        graphs = split_model(model, cache, generator_precision=precision)

        def sessions(path: Path) -> dict[int, ort.InferenceSession]:
            return {n: inference_session(path, n, spin_wait=spin_wait) for n in thread_counts}

        fronts, generators = sessions(graphs.front), sessions(graphs.generator)
        probe: list[ort.InferenceSession] = []

        def probe_session() -> ort.InferenceSession:  # only to calibrate a new voice
            if not probe:
                probe.append(inference_session(graphs.probe, max(thread_counts)))
            return probe[0]

        return cls(
            fronts=fronts,
            generators=generators,
            probe=probe_session,
            stats=NormStats(size=sum(graphs.channels()), cache=cache, key=graphs.key),
            crossfade=CROSSFADE if precision == "int8" else 0,
            context=INT8_CONTEXT if precision == "int8" else CONTEXT,
            first_frames=max(_SMALLEST, round(first_window_ms * SAMPLE_RATE / 1000 / HOP)),
        )

    def calibrate_voices(
        self, packs: dict[str, NDArray[np.float32]], token_lists: Sequence[Sequence[int]]
    ) -> None:
        """Every voice's statistics, from the cache or calibrated on ``token_lists`` (blocking)."""
        front = self.fronts[max(self.fronts)]

        def calibrate(pack: NDArray[np.float32]) -> NDArray[np.float32]:
            styles = [pack[min(len(t), len(pack)) - 1].reshape(1, -1) for t in token_lists]
            return calibrate_stats(front, self._probe(), styles, token_lists)

        self.stats.load(packs, calibrate)

    def observe(self, window: Window, seconds: float, cores: int) -> None:
        """A window of ``window.decoded_frames`` took ``seconds`` on ``cores`` (any thread)."""
        measured = seconds / max(1, window.decoded_frames)
        known = self._frame_s.get(cores)
        self._frame_s[cores] = measured if known is None else 0.7 * known + 0.3 * measured

    def window(self, start: int, end: int, frames: int, *, after_pad: bool = False) -> Window:
        """Frames ``[start, end)`` of a pass of ``frames`` with this generator's context
        (``after_pad``: the window starts in the pad before the pass's first word)."""
        return Window.of(start, end, frames, context=self.context,
                         left=PAD_CONTEXT if after_pad else None)  # fmt: skip

    def next_end(
        self, start: int, frames: int, due: float | None, *, busy: bool, first: bool
    ) -> int:
        """Where the window from ``start`` ends, in a pass of ``frames``. ``due``: when the
        listener runs out of the audio sent before this window (``time.monotonic``; None: no
        hurry); ``busy``: other jobs wait for the model; ``first``: a short first window (the
        listener waits for a turn's first sound), else one sized from ``due``."""
        remaining = frames - start
        if first and frames < _WHOLE_BELOW:
            return frames
        size = self._first
        if not first and due is not None:
            frame_s = max(self._frame_s.values(), default=0.004)
            budget = int((due - time.monotonic()) * _SAFETY / frame_s) - 2 * self.context
            # Never below a first window, even when late: smaller ones cost more than they save.
            size = max(size, budget)
        elif not first:
            size = _LARGEST
        size = min(size, _LARGEST_BUSY if busy else _LARGEST)
        if remaining - size < _SMALLEST:  # a short tail joins this window
            size = remaining
        return start + min(size, remaining)
