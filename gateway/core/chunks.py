"""What a backend hands the speaking pipeline: audio chunks and the words they hold.

These are plain values (no I/O), shared by every layer from the seams up: the backends make
them, the resampler converts them, the seam shaper places them on the session timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.core.segmenter import Boundary

__all__ = ["AudioChunk", "WordTiming"]


@dataclass(frozen=True, slots=True)
class WordTiming:
    """A word of the request text and when it is spoken.

    ``char_start``/``char_end`` are code-point offsets into ``SynthesisRequest.text``;
    ``sample_start``/``sample_end`` count samples at the chunk's sample rate from the start of
    the piece the word belongs to (the audio since the previous ``piece_end``).
    ``spoken`` is how the word was read where that differs from the text ("$5" -> "5 dollars").
    """

    char_start: int
    char_end: int
    sample_start: int
    sample_end: int
    spoken: str | None = None


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio from a backend: mono float32 in [-1, 1] at ``sample_rate`` (None: the backend's
    ``sample_rate``; set by backends whose audio arrives at a rate known only then, such as a
    WAV stream from a remote service, and by wrappers that switch between backends).

    ``piece_end`` is set on the last chunk of a separately synthesized stretch (a model pass)
    to the kind of text boundary it ends on; the gateway trims silence and places a pause of
    that kind there. ``None`` means more of the same stretch follows.

    ``words`` are the timings of words of this piece that the backend knows (native timing);
    they may come with any chunk of the piece, but no later than the chunk whose audio holds
    them. Backends without native timing leave it empty and the gateway estimates.

    ``pause_ms`` (with ``piece_end``) replaces the pause of the boundary with one of this
    length (an SSML ``break``; the speaking pipeline sets it, backends leave it None).
    """

    pcm: NDArray[np.float32]
    piece_end: Boundary | None = None
    words: tuple[WordTiming, ...] = ()
    sample_rate: int | None = None
    pause_ms: float | None = None
