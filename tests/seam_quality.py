"""A seam-quality measure: is a join between two pieces of audio audible as a click?

Around each seam, the largest sample-to-sample step and the high-frequency energy (second
differences) must not exceed what the same audio has inside speech, where speech is every
10 ms window clearly above silence and away from the seams.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_WINDOW_MS = 10.0
_SPEECH_DB = -35.0
_TOLERANCE = 1.1


@dataclass(frozen=True)
class SeamScore:
    position: int
    step: float
    high_frequency: float
    step_limit: float
    high_frequency_limit: float

    @property
    def clean(self) -> bool:
        """Within the audio's own range, give or take measurement noise (a click is many
        times over it)."""
        return (
            self.step <= _TOLERANCE * self.step_limit
            and self.high_frequency <= _TOLERANCE * self.high_frequency_limit
        )


def _high_frequency(window: NDArray[np.float32]) -> float:
    second = np.diff(window.astype(np.float64), n=2)
    return float(np.mean(second**2)) if len(second) else 0.0


def score_seams(
    audio: NDArray[np.float32], seams: Sequence[int], sample_rate: int, *, reach_ms: float = 10
) -> list[SeamScore]:
    """Score each seam (a sample index) against the audio's own speech; the seam's region is
    ``reach_ms`` either side of it (cover a whole crossfade)."""
    width = int(_WINDOW_MS * sample_rate / 1000)
    reach = int(reach_ms * sample_rate / 1000)
    near = np.zeros(len(audio), dtype=bool)
    for seam in seams:
        near[max(0, seam - reach - width) : seam + reach + width] = True
    steps, energies = [], []
    threshold = 10 ** (_SPEECH_DB / 20)
    for start in range(0, len(audio) - width, width):
        window = audio[start : start + width]
        if near[start : start + width].any() or np.sqrt(np.mean(window**2)) < threshold:
            continue
        steps.append(float(np.abs(np.diff(window)).max()))
        energies.append(_high_frequency(window))
    if not steps:
        raise ValueError("no speech away from the seams to compare with")
    step_limit, energy_limit = max(steps), max(energies)
    scores = []
    for seam in seams:
        region = audio[max(0, seam - width) : seam + width]
        energy = max(
            _high_frequency(region[i : i + width])
            for i in range(0, max(1, len(region) - width + 1))
        )
        scores.append(
            SeamScore(seam, float(np.abs(np.diff(region)).max()), energy, step_limit, energy_limit)
        )
    return scores
