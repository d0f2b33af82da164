"""What the sessions of one process share in the speaking pipeline: the settings, the time
model of each backend (learned from every session's calls), the sessions sharing each model,
the encoder threads, prices, and the fallbacks; and how a session's synthesizer is built
(:meth:`SpeechServices.synthesizer`: the backend, guarded, behind its fallback).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from gateway.backends.base import Backend, SynthesisRequest
from gateway.backends.local import LocalBackend
from gateway.backends.threads import WorkerPool
from gateway.config import Config
from gateway.core.admission import ModelLoad, ModelMeter
from gateway.core.cost import CostMeter, Price
from gateway.core.load import LoadMonitor
from gateway.core.pacing import ModelShare, SynthesisTimeModel
from gateway.core.seams import SeamConfig
from gateway.core.segmenter import SegmenterConfig
from gateway.speech.chunking import first_segment_rules
from gateway.speech.clock import Clock
from gateway.speech.synthesis import (
    BackendSynthesizer,
    CallReport,
    Fallback,
    Guarded,
    StreamSettings,
    Switch,
    Synthesizer,
)

__all__ = ["SpeechServices", "SpeechSettings"]

log = logging.getLogger(__name__)

_CALIBRATION_TEXTS: Final = (
    "Hello there.",
    "This longer sentence tells the gateway how the time to synthesize grows with its length.",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechSettings:
    """The configuration of the speaking pipeline (units in the names)."""

    sample_rate: int  # the default stream rate (a stream may choose another)
    seams: SeamConfig
    segmenter: SegmenterConfig
    progress_interval_s: float
    pace_ahead_s: float  # limits.max_buffer_ahead_s
    backend_timeout_s: float
    adaptive_chunking: bool
    latency_target_s: float
    max_merged_chars: int

    @classmethod
    def from_config(cls, config: Config) -> SpeechSettings:
        rate = config.audio.sample_rate
        session = config.session
        return cls(
            sample_rate=rate,
            seams=SeamConfig(sample_rate=rate, **dataclasses.asdict(config.seams)),
            segmenter=config.segmenter,
            progress_interval_s=session.progress_interval_ms / 1000,
            pace_ahead_s=config.limits.max_buffer_ahead_s,
            backend_timeout_s=config.limits.backend_timeout_s,
            adaptive_chunking=session.adaptive_chunking,
            latency_target_s=session.latency_target_ms / 1000,
            max_merged_chars=session.max_merged_chars,
        )


class SpeechServices:
    """Shared by every session of a process (one event loop; not thread-safe).

    ``price``: a backend's price (None: unknown); ``fallback_for``: the loaded backend a
    backend falls back to (None: none); ``recover_after_s``: how long a session stays on a
    fallback before trying its backend again (0: for good); ``saturated``: the gateway's verdict
    on its load, which progress reports (its sessions report their frames to ``load``).
    """

    def __init__(
        self,
        settings: SpeechSettings,
        *,
        price: Callable[[Backend], Price | None],
        fallback_for: Callable[[Backend], Backend | None] = lambda _: None,
        recover_after_s: Callable[[Backend], float] = lambda _: 0.0,
        encoders: WorkerPool | None = None,
        saturated: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.encoders = encoders
        self.load = LoadMonitor()
        self.saturated = saturated
        self._price = price
        self._fallback_for = fallback_for
        self._recover_after_s = recover_after_s
        self._timing_models: dict[str, SynthesisTimeModel] = {}
        self._model_shares: dict[str, ModelShare] = {}
        self._meters: dict[str, tuple[Backend, ModelMeter]] = {}
        self.call_observers: list[Callable[[CallReport], None]] = []  # e.g. the metrics

    def timing_model(self, backend: Backend) -> SynthesisTimeModel:
        """What a call to ``backend`` costs in time, as learned so far (shared by sessions)."""
        return self._timing_models.setdefault(backend.name, SynthesisTimeModel())

    def model_share(self, backend: Backend) -> ModelShare:
        """The sessions speaking through ``backend`` now, to size their calls fairly."""
        share = self._model_shares.get(backend.name)
        if share is None:
            share = self._model_shares[backend.name] = ModelShare(backend.lanes)
        return share

    def model_loads(self, now: float) -> tuple[ModelLoad, ...]:
        """How busy each local model (on this machine's cores) has been, from the calls it
        served, and the work queued for it now (for admission, :mod:`gateway.core.admission`)."""
        return tuple(meter.load(now, name, speaking=len(self.model_share(backend)),
                                queued=backend.counters.queued)
                     for name, (backend, meter) in self._meters.items())  # fmt: skip

    def _observe(self, report: CallReport, now: float) -> None:
        backend = report.backend
        if isinstance(backend, LocalBackend):
            entry = self._meters.get(backend.name)
            if entry is None:
                entry = self._meters[backend.name] = (backend, ModelMeter(backend.lanes))
            audio_s = report.samples / self.settings.sample_rate
            entry[1].call(now, report.model_seconds, audio_s)
        for observe in self.call_observers:
            observe(report)

    def cost_meter(self, backend: Backend) -> CostMeter:
        """A meter at the backend's price, for a session's or a request's cost."""
        return CostMeter(self._price(backend))

    def segmenter_rules(
        self, backend: Backend, *, short_first_segment: bool | None = None
    ) -> SegmenterConfig:
        """The segmenting rules of a new session on ``backend`` (see
        :func:`~gateway.speech.chunking.first_segment_rules`)."""
        s = self.settings
        adaptive = s.adaptive_chunking
        sized = adaptive and not backend.streams_within_segment
        return first_segment_rules(
            s.segmenter,
            timing=self.timing_model(backend) if sized else None,
            latency_target_s=s.latency_target_s,
            competing=self.model_share(backend).competing() if sized else 0,
            short_first_segment=short_first_segment,
        )

    def synthesizer(
        self,
        stream: StreamSettings,
        *,
        clock: Clock,
        report: Callable[[CallReport], None],
        on_switch: Callable[[Switch], Awaitable[None]],
    ) -> Synthesizer:
        """The session's backend, guarded, behind its fallback (and the fallback's, in turn;
        a backend already in the chain is not used again)."""
        return self._chain(stream, clock, report, on_switch, seen=frozenset())

    def _chain(
        self,
        stream: StreamSettings,
        clock: Clock,
        report: Callable[[CallReport], None],
        on_switch: Callable[[Switch], Awaitable[None]],
        *,
        seen: frozenset[str],
    ) -> Synthesizer:
        backend = stream.backend

        def reported(call: CallReport) -> None:
            self._observe(call, clock.now())
            report(call)

        guarded = Guarded(
            BackendSynthesizer(stream, stream.sample_rate),
            timeout_s=self.settings.backend_timeout_s,
            clock=clock,
            report=reported,
        )
        seen = seen | {backend.name}

        def fallback() -> Synthesizer | None:
            other = self._fallback_for(backend)
            if other is None or other.name in seen:
                return None
            return self._chain(stream.on(other), clock, report, on_switch, seen=seen)

        return Fallback(guarded, fallback, on_switch=on_switch, clock=clock,
                        recover_after_s=self._recover_after_s(backend))  # fmt: skip

    async def calibrate(self, backend: Backend) -> None:
        """Time a short and a longer request, so adaptive chunking starts from real figures
        (best effort: a failure keeps the prior)."""
        model = self.timing_model(backend)
        for text in _CALIBRATION_TEXTS:
            request = SynthesisRequest(text, backend.default_voice, backend.default_lang, 1.0)
            started = time.perf_counter()
            try:
                async for _ in backend.synthesize(request):
                    pass
            except Exception as exc:
                log.warning("could not time backend %s: %s", backend.name, exc)
                return
            model.observe(len(text), time.perf_counter() - started)
        log.info("backend %s: about %.0f ms + %.1f ms per character", backend.name,
                 model.fixed_s * 1000, model.per_char_s * 1000)  # fmt: skip
