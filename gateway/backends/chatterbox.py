"""Chatterbox (Resemble AI, ``chatterbox-tts``) from a local checkpoint, streamed in chunks.

Optional extra ``chatterbox``. The checkpoint directory is what ``ChatterboxTTS.from_local``
reads::

    ve.safetensors  t3_cfg.safetensors  s3gen.safetensors  tokenizer.json
    conds.pt        (optional) the built-in voice, offered as ``default``

and ``voices_dir`` holds reference recordings for voice cloning: every ``<name>.wav`` there is
a voice ``<name>`` (a few seconds of clean speech; the first 10 s are used).

Streaming: Chatterbox generates speech tokens one at a time (T3, 25 tokens per second of
speech) and turns them into audio with a vocoder (S3Gen). A worker thread generates; every
``chunk_tokens`` tokens (``first_chunk_tokens`` for the first chunk, to start sound early) it
vocodes the new tokens together with up to ``context_tokens`` tokens before them, and the
renditions are equal-power crossfaded over ``crossfade_ms`` (:mod:`gateway.core.crossfade`),
so one utterance reaches the gateway as one continuous piece. The worker hands chunks to the
event loop through a bounded :class:`~gateway.backends.workers.ChunkBridge`: it never runs more
than a few chunks ahead of the listener. A cancel sets the worker's stop event, checked before
every token and every model layer, so generation stops within one step and the thread ends.

Thread safety: a Chatterbox model keeps per-request state (its conditionals, the generation
loop), so one model generates one request at a time: an asyncio lock serializes requests in
arrival order, and the model only ever runs on this backend's single worker thread.

The model is reached through :class:`ChatterboxEngine`, a seam: :class:`TorchChatterboxEngine`
drives the real ``ChatterboxTTS``; tests pass a stand-in ``engine_factory``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, Voice, listed_voice
from gateway.backends.local import LocalBackend
from gateway.backends.settings import ChatterboxSettings
from gateway.backends.workers import (
    ChunkBridge,
    Interrupted,
    checkpoint,
    install_interrupt_hooks,
    interruptible,
    require_module,
    resolve_device,
)
from gateway.core.crossfade import OverlapJoiner
from gateway.core.reading import read
from gateway.core.scheduling import Policy
from gateway.core.segmenter import Boundary

__all__ = [
    "CHECKPOINT_FILES",
    "ChatterboxBackend",
    "ChatterboxEngine",
    "TorchChatterboxEngine",
    "find_voices",
]

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 24000
LANGUAGES: Final = ("en-us", "en-gb", "en")
CHECKPOINT_FILES: Final = (
    "ve.safetensors",
    "t3_cfg.safetensors",
    "s3gen.safetensors",
    "tokenizer.json",
)
BUILTIN_VOICE_FILE: Final = "conds.pt"
BUILTIN_VOICE: Final = "default"
QUEUE_CHUNKS: Final = 2  # chunks the worker may run ahead of the listener
_VALID_TOKENS: Final = 6561  # S3 speech tokens are 0..6560; above are start/stop markers


class ChatterboxEngine(Protocol):
    """What the backend needs of a Chatterbox model. Called from one worker thread at a time.

    Voices are opaque conditionals objects. ``speech_tokens`` yields speech tokens as they are
    generated (closing the iterator stops generation); ``vocode`` turns tokens into float32
    audio at ``sr`` (960 samples per token at 24 kHz). Both should call
    :func:`gateway.backends.workers.checkpoint` between steps so a cancel stops them.
    """

    sr: int

    def builtin_voice(self, exaggeration: float) -> Any | None:
        """The voice shipped in the checkpoint (``conds.pt``), or None."""
        ...

    def clone_voice(self, wav: Path, exaggeration: float) -> Any:
        """Conditionals for the voice of a reference recording."""
        ...

    def speech_tokens(
        self, text: str, voice: Any, *, cfg_weight: float, temperature: float, max_tokens: int
    ) -> Iterator[int]:
        """Generate the speech tokens of ``text`` one at a time (stop tokens not included)."""
        ...

    def vocode(self, tokens: Sequence[int], voice: Any) -> NDArray[np.float32]:
        """Audio for a run of speech tokens."""
        ...

    def watermark(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        """The audio with Resemble's imperceptible watermark."""
        ...


EngineFactory = Callable[[Path, str], ChatterboxEngine]


def find_voices(settings: ChatterboxSettings) -> tuple[Path, dict[str, Path]]:
    """Check the checkpoint's layout and list the cloning voices (``voices_dir/*.wav``)."""
    if not settings.checkpoint_dir:
        raise BackendError(
            "chatterbox: no checkpoint directory configured; set backends.<name>.checkpoint_dir "
            f"to a directory holding {', '.join(CHECKPOINT_FILES)} (and optionally "
            f"{BUILTIN_VOICE_FILE}), the files of the Chatterbox release"
        )
    directory = Path(settings.checkpoint_dir).expanduser()
    missing = [name for name in CHECKPOINT_FILES if not (directory / name).is_file()]
    if missing:
        raise BackendError(
            f"chatterbox: checkpoint directory {directory} has no {', '.join(missing)}; put "
            f"{', '.join(CHECKPOINT_FILES)} (and optionally {BUILTIN_VOICE_FILE}) there"
        )
    voices: dict[str, Path] = {}
    if settings.voices_dir:
        voices_dir = Path(settings.voices_dir).expanduser()
        if not voices_dir.is_dir():
            raise BackendError(
                f"chatterbox: voices_dir {voices_dir} does not exist; make it a directory of "
                "<voice>.wav reference recordings or leave it empty"
            )
        voices = {path.stem: path for path in sorted(voices_dir.glob("*.wav"))}
    if not voices and not (directory / BUILTIN_VOICE_FILE).is_file():
        raise BackendError(
            f"chatterbox: no voice: put {BUILTIN_VOICE_FILE} in {directory} or <voice>.wav "
            "reference recordings in backends.<name>.voices_dir"
        )
    return directory, voices


class TorchChatterboxEngine:
    """``ChatterboxTTS.from_local`` with a token-by-token generation loop.

    ``ChatterboxTTS.generate`` returns only when the whole utterance is done; this engine runs
    the same model steps (T3 with classifier-free guidance, repetition penalty, min-p and top-p
    sampling, then S3Gen) but yields each token as it is sampled.
    """

    def __init__(self, checkpoint_dir: Path, device: str) -> None:
        torch = require_module("torch", "chatterbox", "chatterbox")
        tts = require_module("chatterbox.tts", "chatterbox", "chatterbox")
        self._torch = torch
        self._tts = tts
        self.device = resolve_device(torch, device, "chatterbox")
        try:
            self._model = tts.ChatterboxTTS.from_local(checkpoint_dir, self.device)
        except Exception as exc:
            raise BackendError(f"chatterbox: cannot load {checkpoint_dir}: {exc}") from exc
        self.sr = int(self._model.sr)
        backend = require_module(
            "chatterbox.models.t3.inference.t3_hf_backend", "chatterbox", "chatterbox"
        )
        t3 = self._model.t3
        self._t3_step = backend.T3HuggingfaceBackend(
            config=t3.cfg, llama=t3.tfmr, speech_enc=t3.speech_emb, speech_head=t3.speech_head
        )
        self._hooks = [
            *install_interrupt_hooks(self._model.t3),
            *install_interrupt_hooks(self._model.s3gen),
        ]
        log.info("chatterbox: loaded %s on %s", checkpoint_dir, self.device)

    def builtin_voice(self, exaggeration: float) -> Any | None:
        conds = self._model.conds
        return None if conds is None else self._with_exaggeration(conds, exaggeration)

    def clone_voice(self, wav: Path, exaggeration: float) -> Any:
        self._model.prepare_conditionals(str(wav), exaggeration=exaggeration)
        return self._model.conds

    def _with_exaggeration(self, conds: Any, exaggeration: float) -> Any:
        torch = self._torch
        t3_cond = conds.t3
        if float(t3_cond.emotion_adv.reshape(-1)[0]) == exaggeration:
            return conds
        cond_type = type(t3_cond)
        changed = cond_type(
            speaker_emb=t3_cond.speaker_emb,
            cond_prompt_speech_tokens=t3_cond.cond_prompt_speech_tokens,
            emotion_adv=exaggeration * torch.ones(1, 1, 1),
        ).to(device=self.device)
        return type(conds)(changed, conds.gen)

    def speech_tokens(
        self, text: str, voice: Any, *, cfg_weight: float, temperature: float, max_tokens: int
    ) -> Iterator[int]:
        torch = self._torch
        # The same sampling steps as ChatterboxTTS.generate (transformers: a chatterbox dependency).
        processors = require_module(
            "transformers.generation.logits_process", "chatterbox", "chatterbox"
        )
        t3 = self._model.t3
        hp = t3.hp
        guided = cfg_weight > 0.0
        batch = 2 if guided else 1  # row 0 conditioned on the text, row 1 not (guidance)
        text_ids = self._model.tokenizer.text_to_tokens(self._tts.punc_norm(text)).to(self.device)
        text_ids = text_ids.expand(batch, -1)
        text_ids = torch.nn.functional.pad(text_ids, (1, 0), value=hp.start_text_token)
        text_ids = torch.nn.functional.pad(text_ids, (0, 1), value=hp.stop_text_token)
        repetition = processors.RepetitionPenaltyLogitsProcessor(penalty=1.2)
        min_p = processors.MinPLogitsWarper(min_p=0.05)
        top_p = processors.TopPLogitsWarper(top_p=1.0)
        with torch.inference_mode():
            start = torch.full(
                (batch, 1), hp.start_speech_token, dtype=torch.long, device=self.device
            )
            embeds, _ = t3.prepare_input_embeds(
                t3_cond=voice.t3, text_tokens=text_ids, speech_tokens=start, cfg_weight=cfg_weight
            )
            bos = t3.speech_emb(start[:1]) + t3.speech_pos_emb.get_fixed_embedding(0)
            output = self._t3_step(
                inputs_embeds=torch.cat([embeds, bos.expand(batch, -1, -1)], dim=1),
                past_key_values=None,
                use_cache=True,
                output_hidden_states=True,
                return_dict=True,
            )
            generated = start[:1]
            for step in range(max_tokens):
                checkpoint()
                logits = output.logits[:, -1, :]
                if guided:
                    logits = logits[0:1] + cfg_weight * (logits[0:1] - logits[1:2])
                logits = repetition(generated, logits)
                logits = top_p(generated, min_p(generated, logits / temperature))
                token = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)
                value = int(token.item())
                if value == hp.stop_speech_token:
                    return
                generated = torch.cat([generated, token], dim=1)
                if value < _VALID_TOKENS:
                    yield value
                embed = t3.speech_emb(token) + t3.speech_pos_emb.get_fixed_embedding(step + 1)
                output = self._t3_step(
                    inputs_embeds=embed.expand(batch, -1, -1),
                    past_key_values=output.past_key_values,
                    use_cache=True,
                    output_hidden_states=True,
                    return_dict=True,
                )

    def vocode(self, tokens: Sequence[int], voice: Any) -> NDArray[np.float32]:
        torch = self._torch
        with torch.inference_mode():
            speech = torch.tensor(list(tokens), dtype=torch.long, device=self.device)
            wav, _ = self._model.s3gen.inference(speech_tokens=speech, ref_dict=voice.gen)
        return np.asarray(wav.squeeze(0).float().cpu().numpy(), dtype=np.float32)

    def watermark(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        marked = self._model.watermarker.apply_watermark(audio, sample_rate=self.sr)
        return np.asarray(marked, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class _Audio:
    pcm: NDArray[np.float32]
    last: bool


class ChatterboxBackend(LocalBackend):
    """Chatterbox TTS: streams each segment in crossfaded chunks as it is generated."""

    kind = "chatterbox"
    sample_rate: int = SAMPLE_RATE
    languages: tuple[str, ...] = LANGUAGES
    streams_within_segment = True
    native_word_timing = False

    def __init__(
        self,
        name: str,
        settings: ChatterboxSettings,
        *,
        engine_factory: EngineFactory = TorchChatterboxEngine,
    ) -> None:
        """``engine_factory(checkpoint_dir, device)`` builds the engine: the seam for stand-ins."""
        if settings.default_lang not in LANGUAGES:
            raise BackendError(
                f"language {settings.default_lang!r} is not supported by {name!r}; use one of "
                + ", ".join(LANGUAGES)
            )
        # One lane: the model is only ever touched by one worker, a request at a time, in
        # arrival order.
        super().__init__(name, settings, lanes=1, policy=Policy.FIFO)
        self._settings = settings
        self._engine_factory = engine_factory
        self._engine: ChatterboxEngine | None = None
        self._voices: dict[str, Any] = {}

    async def _load(self) -> None:
        await self._models.run_unscheduled(self._load_blocking)
        if self.default_voice not in self._voices:
            raise BackendError(
                f"chatterbox: default_voice {self.default_voice!r} is not available "
                f"(voices: {', '.join(sorted(self._voices)) or 'none'})"
            )

    def _load_blocking(self) -> None:
        directory, wavs = find_voices(self._settings)
        engine = self._engine_factory(directory, self._settings.device)
        exaggeration = self._settings.exaggeration
        voices: dict[str, Any] = {}
        builtin = engine.builtin_voice(exaggeration)
        if builtin is not None:
            voices[BUILTIN_VOICE] = builtin
        for name, wav in wavs.items():
            try:
                voices[name] = engine.clone_voice(wav, exaggeration)
            except Exception as exc:
                raise BackendError(
                    f"chatterbox: cannot use {wav} as a reference voice: {exc}"
                ) from exc
        self.sample_rate = int(engine.sr)
        self._voices = voices
        self._engine = engine

    def voices(self) -> list[Voice]:
        return [Voice(id=name, name=name, language="en-us") for name in sorted(self._voices)]

    def resolve_voice(self, name: str) -> str:
        return listed_voice(self, name)

    async def _synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        """Stream one segment. Requests wait their turn for the model, in arrival order.

        Safe to cancel or close at any point: the worker thread is stopped and awaited before
        this generator finishes, so the next request finds the model idle.
        """
        if self._engine is None:
            raise BackendError(f"backend {self.name!r} is not loaded")
        voice = self._voices.get(request.voice)
        if voice is None:
            raise BackendError(f"chatterbox: unknown voice {request.voice!r}")
        text = " ".join(read(request.text, request.lang, request.rules).text.split())
        if not text:
            return
        boundary = _boundary_of(text)
        bridge: ChunkBridge[_Audio | BaseException] = ChunkBridge(QUEUE_CHUNKS)
        stop = threading.Event()
        worker = asyncio.create_task(
            self._models.run(
                lambda: self._generate(text, voice, bridge, stop),
                deadline=request.deadline,
                stop=stop.set,
            ),
            name=f"chatterbox-{self.name}",
        )
        try:
            while True:
                item = await _next_from(bridge, worker)
                if isinstance(item, BaseException):
                    if isinstance(item, BackendError):
                        raise item
                    raise BackendError(f"chatterbox: synthesis failed: {item}") from item
                yield AudioChunk(item.pcm, piece_end=boundary if item.last else None)
                if item.last:
                    break
        finally:
            stop.set()
            bridge.close()
            # The thread has returned (or never started): the model is idle.
            worker.cancel()
            await asyncio.wait([worker])
            if not worker.cancelled() and isinstance(worker.exception(), Exception):
                log.warning("chatterbox worker failed: %s", worker.exception())

    def _generate(
        self,
        text: str,
        voice: Any,
        bridge: ChunkBridge[_Audio | BaseException],
        stop: threading.Event,
    ) -> None:
        """The worker: generate tokens, vocode and join chunks, hand them over (one thread)."""
        try:
            with interruptible(stop):
                self._stream_chunks(text, voice, bridge)
        except Interrupted:
            self.counters.stopped += 1
        except Exception as exc:
            bridge.put(exc)

    def _stream_chunks(
        self, text: str, voice: Any, bridge: ChunkBridge[_Audio | BaseException]
    ) -> None:
        engine = self._engine
        assert engine is not None
        settings = self._settings
        joiner = OverlapJoiner(round(settings.crossfade_ms * engine.sr / 1000))
        done: list[int] = []
        pending: list[int] = []
        wanted = settings.first_chunk_tokens
        tokens = engine.speech_tokens(
            text,
            voice,
            cfg_weight=settings.cfg_weight,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
        )
        try:
            for token in tokens:
                pending.append(token)
                if len(pending) < wanted:
                    continue
                audio = self._render(engine, voice, done, pending, joiner)
                self.counters.samples += len(audio)  # only the worker thread writes it
                done += pending
                pending = []
                wanted = settings.chunk_tokens
                if not bridge.put(_Audio(audio, last=False)):
                    return  # the listener is gone
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # stops the generation loop where it is
        last = self._render(engine, voice, done, pending, joiner) if pending else np.zeros(0)
        self.counters.samples += len(last)
        bridge.put(_Audio(np.concatenate([last, joiner.finish()]).astype(np.float32), last=True))

    def _render(
        self,
        engine: ChatterboxEngine,
        voice: Any,
        done: list[int],
        pending: list[int],
        joiner: OverlapJoiner,
    ) -> NDArray[np.float32]:
        """Vocode ``pending`` after up to ``context_tokens`` of ``done``; join the new audio."""
        context = done[-self._settings.context_tokens :] if done else []
        window = context + pending
        audio = np.asarray(engine.vocode(window, voice), dtype=np.float32)
        if self._settings.watermark:
            audio = engine.watermark(audio)
        per_token = len(audio) / len(window)
        return joiner.push(audio, min(len(audio), round(len(context) * per_token)))


def _boundary_of(text: str) -> Boundary:
    last = text.rstrip()[-1:]
    if last in ".!?…":
        return Boundary.SENTENCE
    if last in ",;:":
        return Boundary.CLAUSE
    return Boundary.WORD


async def _next_from(
    bridge: ChunkBridge[_Audio | BaseException], worker: asyncio.Task[None]
) -> _Audio | BaseException:
    """The worker's next item, or the error that kept the worker from running at all (its
    pool was shut down). A worker that returned has handed over its last item already."""
    get = asyncio.ensure_future(bridge.get())
    try:
        await asyncio.wait([get, worker], return_when=asyncio.FIRST_COMPLETED)
        if not get.done() and not worker.cancelled() and worker.exception() is not None:
            return worker.exception() or BackendError("chatterbox: the worker failed")
        return await get
    finally:
        if not get.done():
            get.cancel()
            await asyncio.wait([get])
