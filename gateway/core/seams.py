"""Seams between synthesized pieces: trim the backend's silence, set a natural pause, fade or
crossfade, and place the pieces' word timings on the output.

Backends pad their output with silence (Kokoro: about 0.3 s before and 0.6 s after), and the
amount varies from piece to piece. Played back to back, that sounds like hesitation. The
:class:`SeamShaper` keeps only a short lead before the first audible 10 ms frame and a short
decay after the last one, and puts a pause of a length chosen by the kind of boundary (sentence,
line, clause, mid-sentence) after each piece, fading both edges so no discontinuity reaches the
encoder. Where the pause is zero (a mid-sentence seam between two passes of one utterance) the
pieces are joined by an equal-power crossfade instead. It works on a stream: audio is released
as soon as it is known to be speech, and only the quiet tail after the last audible frame is held.

Word timings arrive relative to their piece; the shaper returns them on its own output
timeline (sample 0 = the first sample it ever returned), clamped to the audio kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gateway.core.chunks import WordTiming
from gateway.core.segmenter import Boundary

__all__ = ["SeamConfig", "SeamShaper", "Shaped", "reshaping_pad"]

Pcm = NDArray[np.float32]
_ANALYSIS_MS = 10.0
_DECAY_MS = 30.0
_MAX_LAG_MS = 10.0  # a voice's pitch period is at most about 10 ms
_EMPTY: Pcm = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class SeamConfig:
    """Seam lengths in milliseconds; ``silence_db`` is the level (dBFS RMS) counted as silence."""

    sample_rate: int = 24000
    lead_ms: float = 15.0
    sentence_pause_ms: float = 320.0
    line_pause_ms: float = 400.0
    clause_pause_ms: float = 150.0
    word_pause_ms: float = 0.0
    fade_ms: float = 4.0
    crossfade_ms: float = 8.0
    silence_db: float = -50.0

    def samples(self, ms: float) -> int:
        return round(ms * self.sample_rate / 1000)

    def at_rate(self, sample_rate: int) -> SeamConfig:
        """The same seams for a stream at ``sample_rate``."""
        return dataclasses.replace(self, sample_rate=sample_rate)

    def pause_after(self, boundary: Boundary) -> int:
        """Samples of silence that follow a piece ending at ``boundary``."""
        ms = {
            Boundary.SENTENCE: self.sentence_pause_ms,
            Boundary.LINE: self.line_pause_ms,
            Boundary.CLAUSE: self.clause_pause_ms,
        }.get(boundary, self.word_pause_ms)
        return self.samples(ms)


@dataclass(slots=True)
class Shaped:
    """Audio to send, in order, and word timings placed on the shaper's output timeline."""

    pcm: Pcm = field(default_factory=lambda: _EMPTY)
    words: list[WordTiming] = field(default_factory=list)
    speech_end: int | None = None  # from end_piece: output position where the sound ends


def reshaping_pad(config: SeamConfig) -> int:
    """Samples of silence to put before a piece that a shaper with ``config`` has shaped
    already (another gateway's segment), so that shaping it again keeps exactly the same audio:
    its first audible analysis frame, ``lead_ms`` after its start, then falls on the grid of
    analysis frames again."""
    return -config.samples(config.lead_ms) % config.samples(_ANALYSIS_MS)


class SeamShaper:
    """Shapes the audio of consecutive pieces (one owner; not thread-safe).

    Call :meth:`push` with each chunk of a piece (and the word timings that came with it),
    :meth:`end_piece` when a piece (a separately synthesized stretch) ends, :meth:`finish`
    before the output must be complete (flush, end), and use everything returned, in order.
    """

    def __init__(self, config: SeamConfig) -> None:
        self._config = config
        self._frame = max(1, config.samples(_ANALYSIS_MS))
        self._threshold = float(10 ** (config.silence_db / 20))
        self._fade = config.samples(config.fade_ms)
        self._crossfade = config.samples(config.crossfade_ms)
        # The end of the audible audio is held back until the piece's fate is known: faded out
        # before a pause, or crossfaded into the next piece.
        self._hold = max(self._fade, self._crossfade)
        self._out = 0  # samples returned so far: the output timeline
        self._carry: Pcm = _EMPTY  # a previous piece's end, waiting to be crossfaded
        self._reset_piece()

    @property
    def output_samples(self) -> int:
        """Samples returned so far (the output timeline's current end)."""
        return self._out

    def _reset_piece(self) -> None:
        # Positions are absolute sample indices from the start of the piece; the buffer holds
        # the samples from ``_base`` on that have not been released or dropped.
        self._buffer = _EMPTY
        self._base = 0
        self._scanned = 0  # end of the whole analysis frames classified so far
        self._first_audible: int | None = None
        self._audible_end = 0  # just after the last audible frame seen
        self._lead_trimmed = False
        self._released = 0  # samples of this piece released so far
        self._origin = 0  # output position of the piece's sample ``_kept_from``
        self._kept_from = 0  # the first sample of the piece that was kept
        self._waiting_words: list[WordTiming] = []

    def push(self, chunk: Pcm, words: tuple[WordTiming, ...] = ()) -> Shaped:
        """Add a chunk of the current piece; returns the audio now known to be speech."""
        self._buffer = np.concatenate([self._buffer, chunk.astype(np.float32, copy=False)])
        self._waiting_words.extend(words)
        self._classify(final=False)
        pcm = self._release()
        return Shaped(self._emit(pcm), self._place_words())

    def end_piece(
        self, boundary: Boundary, *, last: bool = True, pause_ms: float | None = None
    ) -> Shaped:
        """The current piece is complete; returns its decay and the pause after it (the
        boundary's, or ``pause_ms`` where given).

        A piece that is not the ``last`` of its segment and whose pause is zero is crossfaded
        into the next piece instead.
        """
        self._classify(final=True)
        out = [self._release()]
        words = self._place_words()
        pause = (
            self._config.pause_after(boundary)
            if pause_ms is None
            else self._config.samples(pause_ms)
        )
        if self._first_audible is not None:
            held = max(0, self._audible_end - self._base)
            tail = self._faded_in(self._buffer[: held + self._config.samples(_DECAY_MS)].copy())
            if pause == 0 and not last:
                split = max(0, len(tail) - self._crossfade)
                out.append(tail[:split])
                self._carry = tail[split:]
            else:
                out.append(_fade_out(tail, self._fade))
        if pause or last:
            out.append(self._flush_carry())
        sound = np.concatenate(out)
        speech_end = self._out + len(sound)
        if pause or last:
            sound = np.concatenate([sound, np.zeros(pause, dtype=np.float32)])
        self._reset_piece()
        return Shaped(self._emit(sound), words, speech_end)

    def finish(self) -> Shaped:
        """Everything held is returned (a crossfade waiting for a next piece fades out)."""
        return Shaped(self._emit(self._flush_carry()))

    # -- internals ---------------------------------------------------------------------------

    def _emit(self, pcm: Pcm) -> Pcm:
        self._out += len(pcm)
        return pcm

    def _flush_carry(self) -> Pcm:
        carry, self._carry = self._carry, _EMPTY
        return _fade_out(carry.copy(), len(carry))

    def _classify(self, *, final: bool) -> None:
        """Scan the new whole frames (and a last partial one when ``final``) for sound, all at
        once: the first and the end of the last audible frame so far."""
        end = self._base + len(self._buffer)
        whole_end = self._scanned + (end - self._scanned) // self._frame * self._frame
        stop = end if final else whole_end
        if stop <= self._scanned:
            return
        scanned = self._buffer[self._scanned - self._base : stop - self._base]
        audible = np.flatnonzero(_frame_power(scanned, self._frame) > self._threshold**2)
        if len(audible):
            if self._first_audible is None:
                self._first_audible = self._scanned + int(audible[0]) * self._frame
            self._audible_end = min(stop, self._scanned + (int(audible[-1]) + 1) * self._frame)
        self._scanned = stop

    def _release(self) -> Pcm:
        """Release up to the last audible frame; before the first one, keep only a short lead.

        The last samples stay held, so the piece can still be faded out or crossfaded if it
        ends right there.
        """
        if self._first_audible is None:
            return _EMPTY
        if not self._lead_trimmed:
            lead = 0 if len(self._carry) else self._config.samples(self._config.lead_ms)
            self._drop_until(max(0, self._first_audible - lead))
            self._lead_trimmed = True
            self._kept_from = self._base
            self._origin = self._out  # a pending crossfade starts where this piece starts
        released = self._faded_in(self._take_until(self._audible_end - self._hold))
        if len(self._carry) and len(released):
            released = self._crossfaded(released)
        return released

    def _crossfaded(self, head: Pcm) -> Pcm:
        """Join the held end of the previous piece to the start of this one.

        The start is first slid by up to ``_MAX_LAG_MS`` to where it best continues the held
        audio (so two takes of a voiced sound meet in phase), then the two are crossfaded with
        gains between equal-power (uncorrelated) and linear (correlated), by their correlation,
        so the join neither dips nor swells.
        """
        carry, self._carry = self._carry, _EMPTY
        lag, correlation = _best_lag(carry, head, self._config.samples(_MAX_LAG_MS))
        head = head[lag:]
        self._kept_from += lag
        n = min(len(carry), len(head))
        if n == 0:
            return np.concatenate([_fade_out(carry.copy(), len(carry)), head])
        fade_out, fade_in = _crossfade_gains(len(carry), max(0.0, correlation))
        blended = head.copy()
        blended[:n] = carry[:n] * fade_out[:n] + head[:n] * fade_in[:n]
        rest = carry[n:]
        return np.concatenate([blended, _fade_out(rest.copy(), len(rest))])

    def _faded_in(self, released: Pcm) -> Pcm:
        """Apply the part of the fade-in that falls on these samples (any chunking)."""
        begin = self._released
        self._released += len(released)
        fade = 0 if len(self._carry) else self._fade  # a crossfade replaces the fade-in
        if begin < fade and len(released):
            ramp = np.sin(np.linspace(0, np.pi / 2, fade, dtype=np.float32)) ** 2
            n = min(len(released), fade - begin)
            released[:n] *= ramp[begin : begin + n]
        return released

    def _place_words(self) -> list[WordTiming]:
        """Words of this piece, moved to the output timeline once the piece's start is known."""
        if not self._lead_trimmed or not self._waiting_words:
            return []
        limit = self._audible_end + self._config.samples(_DECAY_MS)
        placed = []
        for word in self._waiting_words:
            start = min(max(word.sample_start, self._kept_from), limit)
            end = min(max(word.sample_end, start), limit)
            placed.append(
                WordTiming(
                    word.char_start,
                    word.char_end,
                    self._origin + start - self._kept_from,
                    self._origin + end - self._kept_from,
                    word.spoken,
                )
            )
        self._waiting_words = []
        return placed

    def _take_until(self, position: int) -> Pcm:
        taken = self._buffer[: max(0, position - self._base)].copy()
        self._drop_until(position)
        return taken

    def _drop_until(self, position: int) -> None:
        count = max(0, position - self._base)
        self._buffer = self._buffer[count:]
        self._base += count


def _best_lag(carry: Pcm, head: Pcm, max_lag: int) -> tuple[int, float]:
    """The shift of ``head`` that best continues ``carry``, and the correlation there."""
    n = len(carry)
    best, best_correlation = 0, 0.0
    carry_energy = float(np.dot(carry, carry))
    for lag in range(0, min(max_lag, len(head) - n) + 1):
        window = head[lag : lag + n]
        energy = float(np.dot(window, window)) * carry_energy
        if energy <= 0:
            continue
        correlation = float(np.dot(carry, window)) / float(np.sqrt(energy))
        if correlation > best_correlation:
            best, best_correlation = lag, correlation
    return best, best_correlation


def _crossfade_gains(length: int, correlation: float) -> tuple[Pcm, Pcm]:
    """Fade-out and fade-in gains: equal-power for uncorrelated audio, linear for correlated."""
    ramp = np.linspace(0.0, 1.0, length, dtype=np.float32)
    angle = ramp * np.float32(np.pi / 2)
    fade_in = (1 - correlation) * np.sin(angle) + correlation * ramp
    fade_out = (1 - correlation) * np.cos(angle) + correlation * (1 - ramp)
    return fade_out.astype(np.float32), fade_in.astype(np.float32)


def _fade_out(pcm: Pcm, length: int) -> Pcm:
    n = min(length, len(pcm))
    if n:
        pcm[len(pcm) - n :] *= np.cos(np.linspace(0, np.pi / 2, n, dtype=np.float32)) ** 2
    return pcm


def _frame_power(pcm: Pcm, frame: int) -> NDArray[np.float32]:
    """Mean square of each ``frame`` samples of ``pcm``; a last partial frame over its own
    length."""
    whole = len(pcm) // frame
    frames = pcm[: whole * frame].reshape(whole, frame)
    power: NDArray[np.float32] = np.einsum("ij,ij->i", frames, frames) / frame
    tail = pcm[whole * frame :]
    if len(tail):
        power = np.append(power, np.float32(np.dot(tail, tail) / len(tail)))
    return power
