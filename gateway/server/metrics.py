"""``GET /metrics``: what an operator watches, in the Prometheus text format (prometheus-client).

Every series is labelled by a bounded set: ``backend`` (a configured backend), ``code`` (an
:class:`~gateway.core.errors.ErrorCode`), ``edge`` (``stream``, ``rest`` or ``elevenlabs``).
Counters and histograms are fed as things happen: each session's outgoing messages pass through a
:class:`SessionObserver` (audio bytes and send lag, time to first audio, underruns, cost, errors)
and every backend call through :meth:`GatewayMetrics.call_ended` (real-time factor). Gauges are
read when scraped (:class:`_LiveCollector`): sessions open, the replica's load and each model's
queue and waits. docs/scaling.md lists them with example queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.backends.base import EngineCounters
from gateway.core.admission import LoadReport
from gateway.core.protocol import (
    Audio,
    BackendSwitched,
    Done,
    Error,
    Progress,
    Ready,
    ServerMessage,
)
from gateway.speech.synthesis import CallReport

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "SessionObserver"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: time to first audio spans a fast local engine to a slow remote one.
_FIRST_AUDIO_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Seconds one audio frame waited to be written to its socket (the send lock, TCP backpressure).
_SEND_LAG_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_RTF_BUCKETS: Final = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


class GatewayMetrics:
    """The metrics of one gateway process, in their own registry (several gateways may share a
    process, e.g. in tests).

    ``load``: the replica's load now; ``engines``: each backend's counters; ``sessions``: the
    sessions open now, by edge; ``sample_rate``: the stream rate (of a call's samples).
    """

    def __init__(
        self,
        *,
        load: Callable[[], LoadReport],
        engines: Callable[[], Mapping[str, EngineCounters]],
        sessions: Callable[[], Mapping[str, int]],
        sample_rate: int,
    ) -> None:
        self._sample_rate = sample_rate
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.admitted = Counter("tts_sessions_admitted", "Sessions admitted.", ["edge"],
                                registry=r)  # fmt: skip
        self.refused = Counter("tts_sessions_refused", "Sessions refused before they started, "
                               "by error code.", ["code"], registry=r)  # fmt: skip
        self.first_audio = Histogram(
            "tts_time_to_first_audio_seconds", "From the first segment's release to its first "
            "audio frame.", ["backend"], buckets=_FIRST_AUDIO_BUCKETS, registry=r)  # fmt: skip
        self.send_lag = Histogram(
            "tts_frame_send_lag_seconds", "How long one audio frame took to be written to its "
            "socket.", ["backend"], buckets=_SEND_LAG_BUCKETS, registry=r)  # fmt: skip
        self.underruns = Counter("tts_underruns", "Times a listener's buffer ran dry while its "
                                 "session had work.", ["backend"], registry=r)  # fmt: skip
        self.real_time_factor = Histogram(
            "tts_real_time_factor", "Model (or wait) seconds per second of audio, per backend "
            "call.", ["backend"], buckets=_RTF_BUCKETS, registry=r)  # fmt: skip
        self.errors = Counter("tts_errors", "Error messages sent to clients, by code.", ["code"],
                              registry=r)  # fmt: skip
        self.audio_bytes = Counter("tts_audio_bytes", "Encoded audio bytes sent to WebSocket "
                                   "clients.", ["backend"], registry=r)  # fmt: skip
        self.cost = Counter("tts_cost_usd", "Synthesis cost at list prices, in US dollars.",
                            ["backend"], registry=r)  # fmt: skip
        r.register(_LiveCollector(load, engines, sessions))

    def session(self, backend: str = "") -> SessionObserver:
        """An observer for one session's outgoing messages; ``backend`` labels them until a
        ``ready`` or ``backend_switched`` names another (a REST request gets no ``ready``)."""
        return SessionObserver(self, backend)

    def call_ended(self, report: CallReport) -> None:
        """A backend call ended: its real-time factor."""
        audio_s = report.samples / self._sample_rate
        if audio_s > 0:
            self.real_time_factor.labels(report.backend.name).observe(
                report.model_seconds / audio_s
            )

    def exposition(self) -> bytes:
        """Every metric, in the Prometheus text format."""
        return generate_latest(self.registry)


class SessionObserver:
    """Counts what one session sends (its backend changes with ``ready`` and a switch)."""

    def __init__(self, metrics: GatewayMetrics, backend: str = "") -> None:
        self._m = metrics
        self._backend = backend
        self._first_audio_seen = False
        self._underruns = 0
        self._cost = 0.0

    def sent(self, message: ServerMessage, seconds: float) -> None:
        """``message`` went out; writing it took ``seconds``."""
        m = self._m
        match message:
            case Audio():
                m.audio_bytes.labels(self._backend).inc(len(message.data))
                m.send_lag.labels(self._backend).observe(seconds)
            case Progress():
                self._progress(message.time_to_first_audio_ms, message.underruns,
                               message.cost_usd)  # fmt: skip
            case Ready() | BackendSwitched():
                self._backend = message.backend
            case Error():
                m.errors.labels(message.code).inc()
            case Done():
                metrics = message.metrics
                self._progress(metrics.get("time_to_first_audio_ms"), metrics.get("underruns", 0),
                               metrics.get("cost_usd"))  # fmt: skip

    def _progress(self, first_audio_ms: float | None, underruns: int, cost: float | None) -> None:
        m, backend = self._m, self._backend
        if first_audio_ms is not None and not self._first_audio_seen:
            self._first_audio_seen = True
            m.first_audio.labels(backend).observe(first_audio_ms / 1000)
        if underruns > self._underruns:
            m.underruns.labels(backend).inc(underruns - self._underruns)
            self._underruns = underruns
        if cost is not None and cost > self._cost:
            m.cost.labels(backend).inc(cost - self._cost)
            self._cost = cost


class _LiveCollector(Collector):
    """Gauges read at scrape time: sessions open, load, and each model's queue and waits."""

    def __init__(
        self,
        load: Callable[[], LoadReport],
        engines: Callable[[], Mapping[str, EngineCounters]],
        sessions: Callable[[], Mapping[str, int]],
    ) -> None:
        self._load = load
        self._engines = engines
        self._sessions = sessions

    def collect(self) -> Iterable[Metric]:
        open_ = GaugeMetricFamily("tts_sessions_open", "Sessions open now.", labels=["edge"])
        for edge, count in self._sessions().items():
            open_.add_metric([edge], count)
        yield open_
        report = self._load()
        yield GaugeMetricFamily("tts_load", "This replica's load (admission refuses new "
                                "sessions at cluster.max_load).", value=report.load)  # fmt: skip
        yield GaugeMetricFamily("tts_over_capacity", "1 while the replica refuses new sessions "
                                "for its load.", value=float(report.over_capacity))  # fmt: skip
        yield GaugeMetricFamily("tts_would_run_dry", "1 when one more session would make a "
                                "listener run dry (the scheduler's verdict).",
                                value=float(report.would_run_dry))  # fmt: skip
        busy = GaugeMetricFamily("tts_model_busy", "Share of a local model's lanes busy over "
                                 "the last 10 s.", labels=["backend"])  # fmt: skip
        for model in report.models:
            busy.add_metric([model.backend], model.busy)
        yield busy
        queued = GaugeMetricFamily("tts_model_queue_depth", "Model work waiting for a slot now.",
                                   labels=["backend"])  # fmt: skip
        waits = CounterMetricFamily("tts_model_waits", "Model work granted a slot.",
                                    labels=["backend"])  # fmt: skip
        waited = CounterMetricFamily("tts_model_wait_seconds", "Seconds model work waited for "
                                     "a slot.", labels=["backend"])  # fmt: skip
        for name, counters in self._engines().items():
            queued.add_metric([name], counters.queued)
            waits.add_metric([name], counters.waits)
            waited.add_metric([name], counters.waited_s)
        yield from (queued, waits, waited)
