"""How loaded a replica is, and whether it should take one more session (no I/O; times are
passed in).

Each local model is measured from the calls it served (:class:`ModelMeter`): its real-time
factor (model seconds per second of audio, recent calls weighing more) and how busy its lanes
were over the last ``window_s`` seconds. A session that speaks continuously needs about
``real_time_factor / lanes`` of the model, whatever the bursts with which it fills its
listener's buffer; so with ``speaking`` sessions on the model, one more needs ``(speaking + 1) *
real_time_factor / lanes``, and the scheduler's verdict is that a new session would run dry (its
listener, or another's, would wait for audio) when that exceeds 1.

A replica's load (:class:`LoadReport`) is the larger of its live sessions over
``limits.max_sessions`` and that predicted demand on its busiest model. With ``cluster.max_load``
set, a replica at or above it refuses new sessions (docs/scaling.md), so the balancer places them
on another replica; 0 (the default, for a gateway alone) never refuses for load.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = ["LoadReport", "ModelLoad", "ModelMeter", "load_report"]

WINDOW_S: Final = 10.0
_MAX_CALLS: Final = 4096  # calls remembered per model within the window (bounded memory)


@dataclass(frozen=True, slots=True)
class ModelLoad:
    """One model's figures: ``speaking`` sessions on it now, its ``real_time_factor`` (None: no
    call measured yet), ``lanes``, the ``busy`` share of its lanes over the window, and calls
    ``queued`` for a lane now."""

    backend: str
    speaking: int
    real_time_factor: float | None
    lanes: int
    busy: float
    queued: int

    @property
    def with_one_more(self) -> float:
        """The model's predicted demand (1: all its lanes) with one more session speaking."""
        return (self.speaking + 1) * (self.real_time_factor or 0.0) / self.lanes


class ModelMeter:
    """The calls one model served: its real-time factor and how busy it was lately."""

    def __init__(self, lanes: int, *, window_s: float = WINDOW_S, decay: float = 0.8) -> None:
        self.lanes = max(1, lanes)
        self._window_s = window_s
        self._decay = decay
        self._calls: deque[tuple[float, float]] = deque(maxlen=_MAX_CALLS)  # (ended at, model s)
        self.real_time_factor: float | None = None

    def call(self, now: float, model_s: float, audio_s: float) -> None:
        """A call ended at ``now`` (monotonic seconds): ``model_s`` of model time for
        ``audio_s`` of audio."""
        self._calls.append((now, model_s))
        if audio_s > 0 and model_s > 0:
            rtf = model_s / audio_s
            previous = self.real_time_factor
            self.real_time_factor = (
                rtf if previous is None else self._decay * previous + (1 - self._decay) * rtf
            )

    def busy(self, now: float) -> float:
        """The share of the lanes busy over the window before ``now`` (calls that ended in it,
        counted for the part of their time inside it)."""
        since = now - self._window_s
        while self._calls and self._calls[0][0] < since:
            self._calls.popleft()
        busy_s = sum(min(model_s, ended - since) for ended, model_s in self._calls)
        return busy_s / (self._window_s * self.lanes)

    def load(self, now: float, backend: str, *, speaking: int, queued: int = 0) -> ModelLoad:
        """The model's figures at ``now`` with ``speaking`` sessions on it."""
        return ModelLoad(
            backend, speaking, self.real_time_factor, self.lanes, self.busy(now), queued
        )


@dataclass(frozen=True, slots=True)
class LoadReport:
    """A replica's load: ``sessions`` live of ``max_sessions``, model calls ``queued`` for a
    lane, each local model's figures, the scheduler's verdict (``would_run_dry``), the load
    figure, and ``max_load`` (0: never refuse for load)."""

    sessions: int
    max_sessions: int
    queued: int
    models: tuple[ModelLoad, ...]
    would_run_dry: bool
    load: float
    max_load: float

    @property
    def over_capacity(self) -> bool:
        """Whether the replica refuses new sessions for its load."""
        return self.max_load > 0 and self.load >= self.max_load


def load_report(
    sessions: int, max_sessions: int, models: tuple[ModelLoad, ...], *, max_load: float
) -> LoadReport:
    """The load of a replica with ``sessions`` live and these ``models``."""
    predicted = max((m.with_one_more for m in models), default=0.0)
    load = max(sessions / max_sessions, predicted)
    return LoadReport(
        sessions=sessions,
        max_sessions=max_sessions,
        queued=sum(m.queued for m in models),
        models=models,
        would_run_dry=predicted > 1.0,
        load=round(load, 4),
        max_load=max_load,
    )
