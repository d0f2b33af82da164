"""Joining overlapping renditions of one utterance into one continuous signal (no I/O).

A chunked generator (Chatterbox) vocodes each new stretch of speech tokens together with some
tokens before it, so each rendition also re-renders the end of the previous one. Cutting at
the boundary would click: the two renditions differ there (the vocoder's excitation starts at
a new phase on each call). :class:`OverlapJoiner` instead holds back the last ``overlap``
samples of each rendition and crossfades them with the same stretch of time in the next one.

The crossfade is equal-power (cosine out, sine in): the renditions agree in spectrum but not
in phase, so they add like uncorrelated signals, and equal power keeps the level steady where
an equal-gain (linear) fade would dip by up to 3 dB.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["OverlapJoiner", "equal_power_ramps"]

Pcm = NDArray[np.float32]


def equal_power_ramps(length: int) -> tuple[Pcm, Pcm]:
    """``(fade_out, fade_in)`` of ``length`` samples with ``fade_out² + fade_in² = 1``."""
    angle = (np.arange(length, dtype=np.float64) + 0.5) * (np.pi / 2 / max(length, 1))
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


class OverlapJoiner:
    """Streams overlapping renditions out as one signal, crossfading where they overlap.

    Each :meth:`push` takes a rendition whose samples before ``new_from`` re-render the end of
    what came before, and returns what can be released now; the last ``overlap`` samples are
    held back until the next rendition arrives to fade into, or :meth:`finish` releases them.
    """

    def __init__(self, overlap: int) -> None:
        if overlap < 0:
            raise ValueError("overlap: must not be negative")
        self.overlap = overlap
        self._held: Pcm = np.zeros(0, np.float32)

    def push(self, rendition: Pcm, new_from: int) -> Pcm:
        """Join ``rendition`` (``rendition[new_from:]`` is new audio) to what came before."""
        if not 0 <= new_from <= len(rendition):
            raise ValueError(f"new_from: {new_from} is outside the rendition ({len(rendition)})")
        rendition = np.asarray(rendition, dtype=np.float32)
        fade = min(len(self._held), new_from)
        if fade:
            fade_out, fade_in = equal_power_ramps(fade)
            tail = self._held[len(self._held) - fade :]
            joined = tail * fade_out + rendition[new_from - fade : new_from] * fade_in
            audio = np.concatenate([self._held[: len(self._held) - fade], joined])
            audio = np.concatenate([audio, rendition[new_from:]])
        else:
            audio = np.concatenate([self._held, rendition[new_from:]])
        keep = min(self.overlap, len(audio))
        self._held = audio[len(audio) - keep :].copy()
        return audio[: len(audio) - keep]

    def finish(self) -> Pcm:
        """Release the held-back end (the utterance is over)."""
        held, self._held = self._held, np.zeros(0, np.float32)
        return held
