"""The benchmark suite's pure parts: the simulated listener, the sweep's arithmetic, /proc
parsing, the report writers and the plot (no benchmark is run here)."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import onnx_tuning, suite
from bench.listener import Listener
from bench.onnx_tuning import configured_variant, variants
from bench.plot import plot_suite
from bench.process import REPO
from bench.procstat import cpu_seconds, parse_cpu_seconds, parse_rss_bytes, rss_bytes
from bench.report import Target, fmt, markdown_table, summary, write_results
from bench.streaming import (
    Trace,
    added_silence_s,
    clause_silences,
    gapless_start_s,
    heard_audio,
)
from bench.sweep import (
    compute_bound,
    largest_clean_load,
    load_cap,
    lost_loads,
    next_load,
    policy_comparison,
    report,
    saturation_loads,
    stagger_s,
)
from bench.zero import ZeroCostBackend
from gateway.audio.codecs import OpusEncoder, OpusOptions
from gateway.audio.framing import AudioOut
from gateway.backends.base import SynthesisRequest
from gateway.backends.settings import KokoroOnnxSettings
from gateway.config import load_config

RATE = 24000
FRAME = 480  # 20 ms


def _play(listener: Listener, arrivals: list[tuple[float, int]]) -> list[float]:
    return [listener.arrive(at, frame * FRAME) for at, frame in arrivals]


def test_listener_frames_on_time_or_early_are_no_underrun() -> None:
    listener = Listener(RATE, tolerance_s=0.05)
    # A burst of ten frames at once, then each next frame well before its turn.
    arrivals = [(10.0, i) for i in range(10)] + [(10.1 + 0.02 * i, 10 + i) for i in range(20)]
    assert _play(listener, arrivals) == [0.0] * 30
    assert listener.underruns == 0
    assert listener.clean


def test_listener_counts_a_late_frame_and_plays_on_from_it() -> None:
    listener = Listener(RATE, tolerance_s=0.05)
    # Frame 0 at t=0 starts playback; frame 1 is due at 0.02 s but comes at 0.5 s.
    lateness = _play(listener, [(0.0, 0), (0.5, 1), (0.52, 2), (0.58, 3)])
    assert lateness[1] == pytest.approx(0.48)
    assert lateness[2:] == [0.0, 0.0]  # due again from the resumed playback
    assert listener.underruns == 1
    assert listener.stall_s == pytest.approx(0.48)
    assert not listener.clean


def test_listener_tolerates_lateness_up_to_its_jitter_buffer() -> None:
    listener = Listener(RATE, tolerance_s=0.05)
    _play(listener, [(0.0, 0), (0.02 + 0.049, 1)])
    assert listener.underruns == 0
    _play(listener, [(0.04 + 0.051, 2)])
    assert listener.underruns == 1


def test_listener_starts_at_the_first_frame_wherever_it_sits_on_the_timeline() -> None:
    listener = Listener(RATE)
    _play(listener, [(5.0, 100), (5.02, 101), (5.04, 102)])
    assert listener.underruns == 0
    assert not Listener(RATE).clean  # heard nothing: not a clean session


def test_compute_bound_is_one_over_rtf_when_the_model_takes_every_core() -> None:
    assert compute_bound(0.2, cores=2, model_cores=2) == pytest.approx(5.0)
    assert compute_bound(0.2, cores=2, model_cores=1) == pytest.approx(10.0)
    assert compute_bound(0.0, cores=2, model_cores=2) == math.inf


def _search(bound: float, cap: int, knee: dict[str, int]) -> list[int]:
    """The loads the search runs when each policy keeps every session clean below its knee
    and none at or above it."""
    clean: dict[int, dict[str, int]] = {}
    while (n := next_load(clean, bound=bound, cap=cap)) is not None:
        assert n not in clean, f"load {n} asked for twice"
        clean[n] = {policy: n if n < limit else 0 for policy, limit in knee.items()}
    return sorted(clean)


def test_search_refines_the_knee_and_goes_beyond_it() -> None:
    # Half the bound (20), then +50 % (30, 45); sessions lost at 45: the gap 30-45 is halved
    # (37, then 41, lost: the knee) until within 15 % of the knee; the top load (45) lost
    # every session of both, so nothing beyond it.
    assert _search(40.0, 60, {"deadline": 41, "fifo": 41}) == [1, 20, 30, 37, 41, 45]
    # Kokoro-like: sessions lost at 3 and at 2 already; 3 is past the knee and lost them all.
    assert _search(5.5, 9, {"deadline": 2, "fifo": 2}) == [1, 2, 3]
    # FIFO loses sessions from 3 on, the scheduler from 5: two loads beyond the knee (4, 5).
    assert _search(5.5, 9, {"deadline": 5, "fifo": 3}) == [1, 2, 3, 4, 5]


def test_search_stops_at_the_cap_and_when_n_1_fails() -> None:
    assert _search(5.5, 3, {"deadline": 99, "fifo": 99}) == [1, 3]
    assert _search(5.5, 9, {"deadline": 1, "fifo": 1}) == [1]  # everyone failed at once
    assert load_cap(5.5, 1.5, 64) == 9
    assert load_cap(40.0, 1.5, 50) == 50
    assert load_cap(math.inf, 1.5, 8) == 8


def test_stagger_spreads_starts_over_at_most_a_quarter_of_the_passage() -> None:
    assert stagger_s(1, 0.3, 30.0) == 0.0
    assert stagger_s(5, 0.3, 30.0) == 0.3
    assert stagger_s(61, 0.3, 30.0) == pytest.approx(0.125)


def test_saturation_is_the_loads_where_a_session_was_lost() -> None:
    clean = {1: {"deadline": 1, "fifo": 1}, 3: {"deadline": 3, "fifo": 2}, 4: {"deadline": 0,
             "fifo": 0}, 2: {"deadline": 2, "fifo": 2}}  # fmt: skip
    assert lost_loads(clean) == [3, 4]
    assert saturation_loads(clean) == [3, 4]
    assert saturation_loads({1: {"deadline": 1, "fifo": 1}, 3: {"deadline": 3, "fifo": 3}}) == [3]


def _points(clean: dict[str, dict[int, int]]) -> dict[str, dict[int, dict[str, Any]]]:
    return {
        policy: {n: {"clean": count, "stall_s": float(n - count)} for n, count in loads.items()}
        for policy, loads in clean.items()
    }


def test_policy_comparison_ratios_at_saturation() -> None:
    points = _points({"deadline": {4: 4, 5: 4, 6: 3}, "fifo": {4: 3, 5: 2, 6: 1}})
    comparison = policy_comparison(points, [5, 6])
    assert comparison["clean"] == {"deadline": 7, "fifo": 3}
    assert comparison["ratio"] == pytest.approx(7 / 3)
    assert comparison["stall_ratio"] == pytest.approx(8 / 4)
    assert comparison["scheduler_better"]


def test_policy_comparison_tie_and_only_the_scheduler() -> None:
    both_failed = policy_comparison(_points({"deadline": {5: 0}, "fifo": {5: 0}}), [5])
    assert both_failed["ratio"] == 1.0
    assert not both_failed["scheduler_better"]
    only = policy_comparison(_points({"deadline": {5: 2}, "fifo": {5: 0}}), [5])
    assert only["ratio"] == math.inf


def test_largest_clean_load_needs_every_session_clean() -> None:
    assert largest_clean_load({1: 1, 2: 2, 4: 3, 5: 5}) == 5
    assert largest_clean_load({1: 1, 2: 1}) == 1
    assert largest_clean_load({1: 0}) == 0


def test_sweep_report_pairs_the_policies() -> None:
    point = {"clean": 2, "stall_s": 0.5, "errors": 0, "ttfa_ms": summary([100.0, 300.0])}
    sweep = {
        "grid": [2],
        "points": {"deadline": {"2": point}, "fifo": {"2": {**point, "clean": 1}}},
        "single_session_rtf": 0.2,
        "compute_bound": 5.0,
        "cpu_bound": 6.0,
        "largest_clean_load": {"deadline": 2, "fifo": 1},
        "largest_over_bound": {"deadline": 0.4, "fifo": 0.2},
        "capacity_ratio": 2.0,
        "saturation": policy_comparison(
            {"deadline": {2: point}, "fifo": {2: {**point, "clean": 1}}}, [2]
        ),
    }
    text = report({"kokoro": sweep})
    assert "| kokoro | 2 | 2 / 1 | 200 / 200 |" in text
    # Capacity ratio, then the loads and sessions without underrun at saturation, and its ratio.
    assert "| 0.40 / 0.20 | 2.00 | 2 | 2 / 1 | 2.00 |" in text


def test_proc_parsers() -> None:
    status = "Name:\tpython\nVmPeak:\t  2000 kB\nVmRSS:\t  1234 kB\nThreads:\t4\n"
    assert parse_rss_bytes(status) == 1234 * 1024
    with pytest.raises(ValueError, match="VmRSS"):
        parse_rss_bytes("Name:\tzombie\n")
    # A command name with spaces and a parenthesis; utime 250 and stime 50 ticks.
    stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 99"
    assert parse_cpu_seconds(stat, clock_ticks=100) == pytest.approx(3.0)


def test_proc_readers_on_this_process() -> None:
    assert rss_bytes(os.getpid()) > 1024 * 1024
    assert cpu_seconds(os.getpid()) > 0


def test_summary_and_fmt() -> None:
    figures = summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert figures["median"] == 3.0
    assert figures["max"] == 100.0
    assert figures["p95"] == pytest.approx(80.8)
    assert math.isnan(summary([])["median"])
    assert fmt(float("nan")) == "-"
    assert fmt(None) == "-"
    assert fmt(1.234, 2, "ms") == "1.23 ms"
    assert fmt(math.inf) == "inf"


def test_markdown_table_escapes_pipes_and_checks_row_width() -> None:
    table = markdown_table(["a", "b"], [(1, "x|y")])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [(1,)])


def test_targets_compare_with_their_operator() -> None:
    assert Target("ttfa", 350.0, "<=", 400.0).met
    assert not Target("ttfa", 450.0, "<=", 400.0).met
    assert Target("share", 0.8, ">=", 0.8).met
    assert not Target("ratio", 1.0, ">", 1.0).met
    assert Target("ratio", None, ">", 1.0).met is None
    with pytest.raises(ValueError, match="op"):
        Target("x", 1.0, "<", 2.0)


def test_write_results_writes_strict_json_and_markdown(tmp_path: Path) -> None:
    result = {"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": 2}}
    written = write_results(tmp_path / "out", "suite", result, "# title")
    assert [path.name for path in written] == ["suite.json", "suite.md"]
    assert json.loads(written[0].read_text()) == {"a": None, "b": [1.5, None], "c": {"d": 2}}
    assert written[1].read_text() == "# title\n"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    point = {"clean": 1, "stall_s": 0.0}
    sweeps = {
        "kokoro": {
            "grid": [1, 2],
            "compute_bound": 4.7,
            "points": {"deadline": {"1": point, "2": point}, "fifo": {"1": point, "2": point}},
        }
    }
    runs = {"kokoro": [500.0, 520.0, 610.0], "espeak": [5.0, 7.0, 9.0], "piper": []}
    path = plot_suite(tmp_path / "suite.png", runs, sweeps, targets={"kokoro": 400.0})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_and_render_of_a_result() -> None:
    result: dict[str, Any] = {
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gib": 24.0, "python": "3.11",
                    "onnxruntime": "1.0", "load_average": [0.5, 0.5, 0.5]},
        "plan": {"quick": True},
        "duration_s": 90.0,
        "load_average_at_end": [1.0, 1.0, 1.0],
        "ttfa": {"espeak": {"first_segment_chars": 20, "ttfa_ms": summary([5.0, 30.0, 40.0]),
                            "ttfa_ms_runs": [5.0, 30.0, 40.0]}},
        "opus": {"cpu_per_audio_s": 0.005, "streams_per_core": 200.0},
        "elevenlabs": {"backend": "zero", "stream_ttfa_ms": summary([2.0, 2.5]),
                       "elevenlabs_ttfa_ms": summary([2.5, 3.0]), "added_ms": 0.5},
        "sweep": {"error": "RuntimeError: the gateway exited with 1"},
    }  # fmt: skip
    found = suite.targets(result)
    assert [(t.name, t.met) for t in found] == [
        ("espeak median time to first audio, ms", False),
        ("ElevenLabs edge: added time to first audio, median ms (zero)", True),
    ]
    result["targets"] = [t.as_dict() for t in found]
    text = suite.render(result)
    assert "Machine: Test CPU, 2 cores, 24 GiB RAM" in text
    assert "## 1. Time to first audio" in text
    assert "## 6. Opus encoding cost per stream" in text
    assert "## 10. The ElevenLabs-compatible edge" in text
    assert "the ElevenLabs edge adds 0.50 ms at the median (target: at most 5 ms)" in text
    assert "| espeak median time to first audio, ms | 30 | <= 20 | NOT met |" in text
    assert "This part failed: RuntimeError: the gateway exited with 1" in text


def test_model_cores_and_plans() -> None:
    config = load_config(REPO / "config.toml", environ={})
    assert suite.model_cores(config, "kokoro", 2) == 2.0  # threads 0: every core, one at once
    assert suite.model_cores(config, "espeak", 2) == 2.0  # two engines, capped at the cores
    quick, full = suite.plan_for(quick=True), suite.plan_for(quick=False)
    assert quick.runs < full.runs == 20
    assert quick.sweep.max_sessions < full.sweep.max_sessions
    assert suite.plan_for(quick=True, runs=7).runs == 7


async def test_zero_cost_backend_times_every_word() -> None:
    backend = ZeroCostBackend()
    await backend.load()
    text = "Hello there, quiet kitchen."
    chunks = [c async for c in backend.synthesize(SynthesisRequest(text, "zero", "en-us", 1.0))]
    assert len(chunks) == 1
    words = chunks[0].words
    assert [text[w.char_start : w.char_end] for w in words] == [
        "Hello",
        "there",
        "quiet",
        "kitchen",
    ]
    assert words[-1].sample_end == len(chunks[0].pcm)
    assert all(a.sample_end == b.sample_start for a, b in itertools.pairwise(words))


def test_tuning_measures_the_configured_variant_once_and_first() -> None:
    configured = configured_variant(KokoroOnnxSettings(threads=0, spin_wait=False), 2)
    assert (configured.threads, configured.spinning, configured.parallel) == (2, False, 1)
    names = [v.name for v in variants(configured, 2, quick=False)]
    assert names[0] == configured.name
    assert "2 threads" not in names  # the configured variant already is 2 threads, no spinning
    assert "2 threads, spinning" in names
    assert len(variants(configured, 2, quick=True)) == 2
    spinning = configured_variant(KokoroOnnxSettings(threads=1, spin_wait=True), 2)
    assert "1 thread" in [v.name for v in variants(spinning, 2, quick=False)]


def test_tuning_report_names_the_fastest_and_the_configured() -> None:
    def figures(name: str, rtf: float, *, configured: bool = False) -> dict[str, Any]:
        return {"variant": name, "configured": configured, "load_s": 0.3, "rtf": rtf,
                "first_pass_ms": 600.0, "first_pass_steady_ms": 500.0, "cpu_per_audio_s": 0.3,
                "loop_lag_p95_ms": 2.0, "loop_lag_max_ms": 3.0}  # fmt: skip

    result = {"variants": [figures("mine", 0.2, configured=True), figures("other", 0.1)]}
    text = onnx_tuning.report(result)
    assert "| **mine** | 0.30 s | 600 / - / 500 | 0.200 |" in text
    assert "Fastest (RTF): other (0.100)" in text
    assert "2.00x the fastest" in text


# -- streaming inside a sentence: the gap detector ---------------------------------------------


def _streaming_trace(
    text: str, words: list[tuple[str, float, float]], *, late_s: float, late_from_s: float
) -> Trace:
    """A trace of ``text`` spoken as a tone per word (``words``: text, start, end in seconds),
    its 20 ms Opus frames arriving in real time from 0, except that frames from ``late_from_s``
    on arrive ``late_s`` late (a listener that started at the first frame waits for them)."""
    duration = max(end for _, _, end in words) + 0.3
    pcm = np.zeros(int(duration * RATE), np.float32)
    timed, position = {}, 0
    for word, start, end in words:
        char = text.index(word, position)
        position = char + len(word)
        a, b = int(start * RATE), int(end * RATE)
        pcm[a:b] = 0.3 * np.sin(np.arange(b - a) * 0.2)
        timed[char] = {"text": word, "char_start": char, "char_end": position,
                       "sample_start": a, "sample_end": b}  # fmt: skip
    out = AudioOut(OpusEncoder(OpusOptions()))
    frames = out.write(pcm) + out.drain()
    trace = Trace(text, 0.0, 0.0, RATE, FRAME)
    for frame in frames:
        at = frame.sample_start / RATE + (late_s if frame.sample_start >= late_from_s * RATE else 0)
        trace.arrivals.append((at + 0.3, frame.sample_start, frame.data))
    trace.words = timed
    return trace


def test_the_clause_silence_detector_catches_a_first_fragment_waiting_for_the_rest() -> None:
    """Today's gap: "The quick" was a first segment of its own, and "brown fox" came 0.8 s
    after the listener ran out: silence inside a clause, heard."""
    text = "The quick brown fox jumps, and then it rests."
    words = [("The", 0.0, 0.2), ("quick", 0.25, 0.55), ("brown", 0.6, 0.9), ("fox", 0.95, 1.2),
             ("jumps", 1.25, 1.6), ("and", 1.9, 2.1), ("then", 2.15, 2.4), ("it", 2.45, 2.6),
             ("rests", 2.65, 3.0)]  # fmt: skip
    late = _streaming_trace(text, words, late_s=0.8, late_from_s=0.58)
    heard = heard_audio(late)
    assert heard.underruns == 1
    silences = {(g.before, g.after): g.silence_s for g in clause_silences(late, heard)}
    assert silences[("quick", "brown")] > 0.7
    assert max(s for pair, s in silences.items() if pair != ("quick", "brown")) < 0.25
    assert ("jumps", "and") not in silences  # a comma: a pause there belongs to no clause
    assert gapless_start_s(late) > 0.3 + 0.8 - 0.05  # the player had to start that much later
    on_time = _streaming_trace(text, words, late_s=0.0, late_from_s=0.0)
    heard_on_time = heard_audio(on_time)
    assert heard_on_time.underruns == 0
    assert max(g.silence_s for g in clause_silences(on_time, heard_on_time)) < 0.25
    assert gapless_start_s(on_time) == pytest.approx(0.3, abs=0.01)


def test_a_pause_the_model_makes_itself_is_not_counted_as_added_silence() -> None:
    """The same audio, once with the model's own 0.4 s pause between "over" and "HTTP" (a whole
    decode has it too) and once without: only the second counts it as added by streaming."""
    text = "Hello over HTTP now."
    words = [("Hello", 0.0, 0.3), ("over", 0.35, 0.6), ("HTTP", 1.0, 1.4), ("now", 1.45, 1.7)]
    trace = _streaming_trace(text, words, late_s=0.0, late_from_s=0.0)
    gaps = clause_silences(trace, heard_audio(trace))
    over = text.index("over")
    assert added_silence_s(gaps, {over: 0.4}) < 0.1
    assert added_silence_s(gaps, {}) > 0.3


def test_the_clause_silence_detector_catches_a_pause_in_the_audio_itself() -> None:
    text = "Hello over HTTP now."
    words = [("Hello", 0.0, 0.3), ("over", 0.35, 0.6), ("HTTP", 1.0, 1.4), ("now", 1.45, 1.7)]
    trace = _streaming_trace(text, words, late_s=0.0, late_from_s=0.0)
    silences = {
        (g.before, g.after): g.silence_s for g in clause_silences(trace, heard_audio(trace))
    }
    assert silences[("over", "HTTP")] > 0.3  # 0.4 s of silence between two words of a clause
