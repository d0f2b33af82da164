"""Seams between synthesized pieces: trim the backend's silence, set a natural pause, fade.

Backends pad their output with silence (Kokoro: about 0.3 s before and 0.6 s after), and the
amount varies from piece to piece. Played back to back, that sounds like hesitation. The
:class:`SeamShaper` keeps only a short lead before the first audible 10 ms frame and a short
decay after the last one, fades both edges so no discontinuity reaches the encoder, and puts a
pause of a length chosen by the kind of boundary (sentence, line, clause, mid-sentence) after
each piece. It works on a stream: audio is released as soon as it is known to be speech, and
only the quiet tail after the last audible frame is held back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.core.segmenter import Boundary

__all__ = ["SeamConfig", "SeamShaper"]

Pcm = NDArray[np.float32]
_ANALYSIS_MS = 10.0
_DECAY_MS = 30.0


@dataclass(frozen=True, slots=True)
class SeamConfig:
    """Seam lengths in milliseconds; ``silence_db`` is the level (dBFS RMS) counted as silence."""

    sample_rate: int = 24000
    lead_ms: float = 15.0
    sentence_pause_ms: float = 320.0
    line_pause_ms: float = 400.0
    clause_pause_ms: float = 150.0
    word_pause_ms: float = 20.0
    fade_ms: float = 4.0
    silence_db: float = -50.0

    def samples(self, ms: float) -> int:
        return round(ms * self.sample_rate / 1000)

    def pause_after(self, boundary: Boundary) -> int:
        """Samples of silence that follow a piece ending at ``boundary``."""
        ms = {
            Boundary.SENTENCE: self.sentence_pause_ms,
            Boundary.LINE: self.line_pause_ms,
            Boundary.CLAUSE: self.clause_pause_ms,
        }.get(boundary, self.word_pause_ms)
        return self.samples(ms)


class SeamShaper:
    """Shapes the audio of consecutive pieces (one owner; not thread-safe).

    Call :meth:`push` with each chunk of a piece, :meth:`end_piece` when a piece (a separately
    synthesized stretch) ends, and use every array returned, in order.
    """

    def __init__(self, config: SeamConfig) -> None:
        self._config = config
        self._frame = max(1, config.samples(_ANALYSIS_MS))
        self._threshold = float(10 ** (config.silence_db / 20))
        self._fade = config.samples(config.fade_ms)
        self._reset_piece()

    def _reset_piece(self) -> None:
        # Positions are absolute sample indices from the start of the piece; the buffer holds
        # the samples from ``_base`` on that have not been released or dropped.
        self._buffer = np.zeros(0, dtype=np.float32)
        self._base = 0
        self._scanned = 0  # end of the whole analysis frames classified so far
        self._first_audible: int | None = None
        self._audible_end = 0  # just after the last audible frame seen
        self._lead_trimmed = False
        self._released = 0  # samples of this piece released so far

    def push(self, chunk: Pcm) -> Pcm:
        """Add a chunk of the current piece; returns the audio now known to be speech."""
        self._buffer = np.concatenate([self._buffer, chunk.astype(np.float32, copy=False)])
        self._classify(final=False)
        return self._release()

    def end_piece(self, boundary: Boundary) -> Pcm:
        """The current piece is complete; returns its decay, faded out, and the pause after it."""
        self._classify(final=True)
        out = [self._release()]
        if self._first_audible is not None:
            held = max(0, self._audible_end - self._base)
            tail = self._faded_in(self._buffer[: held + self._config.samples(_DECAY_MS)].copy())
            out.append(_fade_out(tail, self._fade))
        out.append(np.zeros(self._config.pause_after(boundary), dtype=np.float32))
        self._reset_piece()
        return np.concatenate(out)

    def _classify(self, *, final: bool) -> None:
        end = self._base + len(self._buffer)
        while self._scanned + self._frame <= end or (final and self._scanned < end):
            start = self._scanned - self._base
            frame = self._buffer[start : start + self._frame]
            self._scanned += len(frame)
            if float(np.sqrt(np.mean(frame * frame))) > self._threshold:
                if self._first_audible is None:
                    self._first_audible = self._scanned - len(frame)
                self._audible_end = self._scanned

    def _release(self) -> Pcm:
        """Release up to the last audible frame; before the first one, keep only a short lead.

        The last ``fade`` samples stay held, so the piece can still be faded out if it ends
        right there.
        """
        if self._first_audible is None:
            return np.zeros(0, dtype=np.float32)
        if not self._lead_trimmed:
            lead = self._config.samples(self._config.lead_ms)
            self._drop_until(max(0, self._first_audible - lead))
            self._lead_trimmed = True
        released = self._take_until(self._audible_end - self._fade)
        return self._faded_in(released)

    def _faded_in(self, released: Pcm) -> Pcm:
        """Apply the part of the fade-in that falls on these samples (any chunking)."""
        begin = self._released
        self._released += len(released)
        if begin < self._fade and len(released):
            ramp = np.sin(np.linspace(0, np.pi / 2, self._fade, dtype=np.float32)) ** 2
            n = min(len(released), self._fade - begin)
            released[:n] *= ramp[begin : begin + n]
        return released

    def _take_until(self, position: int) -> Pcm:
        taken = self._buffer[: max(0, position - self._base)].copy()
        self._drop_until(position)
        return taken

    def _drop_until(self, position: int) -> None:
        count = max(0, position - self._base)
        self._buffer = self._buffer[count:]
        self._base += count


def _fade_out(pcm: Pcm, length: int) -> Pcm:
    n = min(length, len(pcm))
    if n:
        pcm[len(pcm) - n :] *= np.cos(np.linspace(0, np.pi / 2, n, dtype=np.float32)) ** 2
    return pcm
