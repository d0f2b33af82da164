"""Kokoro-82M's ONNX graph cut in two, so a sentence can be decoded window by window.

The shipped graph runs the text encoder, the prosody predictor, the decoder and its iSTFTNet
generator in one pass. :func:`split_model` rewrites it once (with the ``onnx`` package, the
weights as they are) into:

* the FRONT: ``tokens, style, speed -> durations, x, f0``: everything up to the generator, the
  decoder's AdaIN blocks included (their instance norms need the whole sentence); about 5 % of a
  pass. ``x`` is the generator's input, 512 channels at 80 Hz (two frames per 600-sample duration
  frame); ``f0`` the F0 curve at 80 Hz.
* the GENERATOR: ``x, f0, phase, style, norm_stats -> audio`` (300 samples per 80 Hz frame),
  about 95 % of a pass. Two of its inputs make a window decodable alone:

  - ``phase``: the harmonic source's running phase (the graph's ``CumSum`` over the per-frame
    phase increments of nine harmonics of F0), computed on the host for the whole sentence. The
    export has no random ops, so with the phase given a window's source is the whole decode's.
  - ``norm_stats``: the per-channel statistics of the generator's 48 AdaIN instance norms (88
    ``ReduceMean`` over time). The shipped graph takes them over the whole pass, which makes every
    sample depend on every frame; here they are fixed per voice (calibrated,
    :mod:`gateway.backends.kokoro_windows`), and the generator is a pure stack of convolutions
    whose reach is 11.3 frames each side (measured).

  The linear ``Resize`` that upsamples the phase to samples is replaced by an equal depthwise
  ``ConvTranspose``: ONNX Runtime derives Resize's weights from the absolute output index in
  float32, so a frame would be interpolated a little differently in a window than in the pass.
* the PROBE: the generator as shipped, also outputting its norm statistics (for calibration).

The generator is the shipped int8 one, or its float32 dequantization (:func:`dequantize`; windows
are then bit-identical to a whole decode). The graphs are built once and cached beside the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from gateway.core.errors import BackendError

__all__ = [
    "HARMONICS",
    "HOP",
    "Precision",
    "SplitModels",
    "dequantize",
    "inference_session",
    "save_atomically",
    "split_model",
]

HOP: Final = 300  # samples per generator frame (80 Hz at 24 kHz)
HARMONICS: Final = 9  # the sine source's harmonics of F0
Precision = Literal["int8", "fp32"]

# Tensor names of the Kokoro v1.0 ONNX export (the kokoro-onnx / onnx-community int8 file).
_DURATIONS: Final = "/encoder/Gather_output_0"  # int64 [n+2], input of the alignment CumSum
_F0: Final = "/encoder/Reshape_output_0"  # [1, 2T] F0 curve (80 Hz)
_X: Final = "/decoder/decoder/decode.3/Div_4_output_0"  # [1, 512, 2T] generator input
_PHASE: Final = "/decoder/decoder/generator/m_source/l_sin_gen/CumSum_output_0"  # [1, 2T, 9]
_GENERATOR: Final = "/decoder/decoder/generator/"
_AUDIO: Final = "audio"
_FORMAT: Final = "kokoro-split-1"  # bump when the cut changes (invalidates the cache)


# --------------------------------------------------------------------------- graph surgery


def _subgraph(
    model: onnx.ModelProto,
    inputs: dict[str, tuple[str, int, Sequence[int | str] | None]],
    outputs: dict[str, tuple[str, int, Sequence[int | str] | None]],
    name: str,
    extra_nodes: Sequence[onnx.NodeProto] = (),
) -> onnx.ModelProto:
    """The nodes of ``model`` that compute ``outputs`` from ``inputs`` (dead nodes dropped).

    Both map an internal tensor name to ``(public name, element type, shape)``; an internal
    tensor listed in ``inputs`` becomes a graph input even if a node produced it (the cut).
    ``extra_nodes`` are added to the graph before the walk (e.g. to feed a cut tensor).
    """
    graph = model.graph
    all_nodes = list(graph.node) + list(extra_nodes)
    producers = {out: node for node in all_nodes for out in node.output}
    initializers = {init.name: init for init in graph.initializer}
    kept: dict[int, onnx.NodeProto] = {}
    needed: set[str] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if not tensor or tensor in seen or tensor in inputs:
            continue
        seen.add(tensor)
        if tensor in initializers:
            needed.add(tensor)
            continue
        node = producers.get(tensor)
        if node is None:
            raise ValueError(f"{name}: {tensor!r} is neither computed nor an input")
        if id(node) not in kept:
            kept[id(node)] = node
            stack.extend(node.input)
    order = {id(node): i for i, node in enumerate(all_nodes)}
    rename = {internal: public for internal, (public, _, _) in inputs.items()}
    nodes = []
    for node in sorted(kept.values(), key=lambda n: order[id(n)]):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        for i, tensor in enumerate(copy.input):
            copy.input[i] = rename.get(tensor, tensor)
        nodes.append(copy)
    for internal, (public, _, _) in outputs.items():
        source = rename.get(internal, internal)
        if source != public:
            nodes.append(helper.make_node("Identity", [source], [public], name=f"out/{public}"))
    new_graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(p, t, s) for p, t, s in inputs.values()],
        [helper.make_tensor_value_info(p, t, s) for p, t, s in outputs.values()],
        initializer=[initializers[n] for n in sorted(needed)],
    )
    new = helper.make_model(new_graph, opset_imports=list(model.opset_import))
    new.ir_version = model.ir_version
    new.producer_name = "tts-gateway"
    return new


def dequantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with float32 weights and float ops instead of dynamic quantization.

    Rewrites, in the exported pattern ``DynamicQuantizeLinear(x) -> ConvInteger|MatMulInteger
    [-> Add(int32 bias)] -> Cast(float) -> Mul(x_scale * w_scale)``, the chain into one
    ``Conv(x, W, bias)`` / ``MatMul(x, W)`` with ``W = (Wq - w_zero) * w_scale``, and each
    ``DynamicQuantizeLSTM`` into an ``LSTM`` (its weights are stored transposed). Weight-only
    DequantizeLinear of the embeddings is left as it is (a Gather, cheap).
    """
    return _Dequantizer(model).model()


class _Dequantizer:
    """One rewrite of a dynamically quantized graph (see :func:`dequantize`)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self._source = model
        graph = model.graph
        self._inits = {init.name: init for init in graph.initializer}
        self._producers = {out: node for node in graph.node for out in node.output}
        self._consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for tensor in node.input:
                self._consumers.setdefault(tensor, []).append(node)
        self._weights: dict[str, onnx.TensorProto] = {}  # new float32 initializers

    def model(self) -> onnx.ModelProto:
        graph = self._source.graph
        replaced: dict[int, onnx.NodeProto] = {}  # id(node whose output the new node makes)
        for node in graph.node:
            if node.op_type in ("ConvInteger", "MatMulInteger"):
                last, new = self._integer_op(node)
                replaced[id(last)] = new
            elif node.op_type == "DynamicQuantizeLSTM":
                replaced[id(node)] = self._lstm(node)
        nodes = [replaced.get(id(node), node) for node in graph.node]
        live = {output.name for output in graph.output}
        kept = []
        for node in reversed(nodes):  # drop what the rewrite left dead (the integer chains)
            if any(out in live for out in node.output):
                kept.append(node)
                live.update(tensor for tensor in node.input if tensor)
        kept.reverse()
        initializers = [
            init for init in [*graph.initializer, *self._weights.values()] if init.name in live
        ]
        new_graph = helper.make_graph(
            kept, graph.name, list(graph.input), list(graph.output), initializer=initializers
        )
        model = helper.make_model(new_graph, opset_imports=list(self._source.opset_import))
        model.ir_version = self._source.ir_version
        model.producer_name = "tts-gateway/dequantized"
        return model

    def _array(self, name: str) -> NDArray[Any]:
        return numpy_helper.to_array(self._inits[name])

    def _sole(self, tensor: str, op: str) -> onnx.NodeProto | None:
        users = self._consumers.get(tensor, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    def _integer_op(self, node: onnx.NodeProto) -> tuple[onnx.NodeProto, onnx.NodeProto]:
        """The float op replacing a quantized Conv/MatMul chain, and the chain's last node."""
        xq, wq, _, w_zero = _padded(node.input, 4)
        quantize = self._producers.get(xq)
        if quantize is None or quantize.op_type != "DynamicQuantizeLinear" or wq not in self._inits:
            raise ValueError(f"dequantize: unexpected inputs at {node.name}")
        tail, bias = node.output[0], None
        add = self._sole(tail, "Add")
        if add is not None:  # bias quantized at run time: Div(bias, scale) -> ... -> Add
            other = self._producers[add.input[1] if add.input[0] == tail else add.input[0]]
            while other.op_type != "Div":
                other = self._producers[other.input[0]]
            bias, tail = other.input[0], add.output[0]
        cast = self._sole(tail, "Cast")
        scale_mul = self._sole(cast.output[0], "Mul") if cast is not None else None
        if cast is None or scale_mul is None:
            raise ValueError(f"dequantize: unexpected output chain at {node.name}")
        scales = self._producers[
            scale_mul.input[1] if scale_mul.input[0] == cast.output[0] else scale_mul.input[0]
        ]
        w_scale = scales.input[1] if scales.input[0] == quantize.output[1] else scales.input[0]
        weight = self._float_weight(wq, w_zero, w_scale, per_channel=node.op_type == "ConvInteger")
        if node.op_type == "ConvInteger":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            inputs = [quantize.input[0], weight] + ([bias] if bias else [])
            new = helper.make_node(
                "Conv", inputs, [scale_mul.output[0]], name=f"{node.name}/f32", **attrs
            )
        else:
            if bias is not None:
                raise ValueError(f"dequantize: MatMulInteger with bias at {node.name}")
            new = helper.make_node("MatMul", [quantize.input[0], weight], [scale_mul.output[0]],
                                   name=f"{node.name}/f32")  # fmt: skip
        return scale_mul, new

    def _float_weight(self, wq: str, w_zero: str, w_scale: str, *, per_channel: bool) -> str:
        """The float32 initializer ``(Wq - zero) * scale`` (made once per weight)."""
        name = f"{wq}/f32"
        if name not in self._weights:
            q = self._array(wq).astype(np.float32)
            zero = self._array(w_zero).astype(np.float32) if w_zero else np.float32(0)
            scale = self._array(w_scale).astype(np.float32)
            if per_channel:  # a Conv weight: per output channel (axis 0) or per tensor
                shape = (-1,) + (1,) * (q.ndim - 1)
                zero = zero.reshape(shape) if np.ndim(zero) else zero
                scale = scale.reshape(shape) if np.ndim(scale) else scale
            weights = ((q - zero) * scale).astype(np.float32)  # MatMul: per column
            self._weights[name] = numpy_helper.from_array(weights, name)
        return name

    def _lstm(self, node: onnx.NodeProto) -> onnx.NodeProto:
        x, w, r, b, lengths, h0, c0, _, w_scale, w_zero, r_scale, r_zero = _padded(node.input, 12)
        for quantized, scale, zero in ((w, w_scale, w_zero), (r, r_scale, r_zero)):
            name = f"{quantized}/f32"
            if name not in self._weights:
                q = self._array(quantized).astype(np.float32)  # [directions, input, 4 * hidden]
                z = self._array(zero).astype(np.float32)[:, None, None]
                s = self._array(scale).astype(np.float32)[:, None, None]
                weights = ((q - z) * s).transpose(0, 2, 1).astype(np.float32)
                self._weights[name] = numpy_helper.from_array(weights, name)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return helper.make_node(
            "LSTM", [x, f"{w}/f32", f"{r}/f32", b, lengths, h0, c0], list(node.output),
            name=f"{node.name}/f32", **attrs,
        )  # fmt: skip


def _padded(inputs: Sequence[str], count: int) -> list[str]:
    """A node's inputs, absent optional ones as ``""``."""
    return [*inputs, *[""] * count][:count]


def _norm_reductions(model: onnx.ModelProto) -> list[str]:
    """The outputs of the generator's instance-norm reductions (mean, then mean of squares of
    the centred input, per norm), in graph order."""
    return [
        node.output[0]
        for node in model.graph.node
        if node.op_type == "ReduceMean" and node.name.startswith(_GENERATOR)
    ]


def _generator_inputs() -> dict[str, tuple[str, int, Sequence[int | str] | None]]:
    f = TensorProto.FLOAT
    return {
        _X: ("x", f, [1, 512, "frames"]),
        _F0: ("f0", f, [1, "frames"]),
        _PHASE: ("phase", f, [1, "frames", HARMONICS]),
        "style": ("style", f, [1, 256]),
    }


def _front(model: onnx.ModelProto) -> onnx.ModelProto:
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    return _subgraph(
        model,
        {"tokens": ("tokens", i64, [1, "n"]), "style": ("style", f, [1, 256]),
         "speed": ("speed", f, [1])},
        {_DURATIONS: ("durations", i64, ["n"]), _X: ("x", f, [1, 512, "frames"]),
         _F0: ("f0", f, [1, "frames"])},
        "kokoro_front",
    )  # fmt: skip


def _probe(model: onnx.ModelProto, reductions: list[str]) -> onnx.ModelProto:
    """The generator as exported (whole-input norm statistics), also outputting them."""
    f = TensorProto.FLOAT
    outputs: dict[str, tuple[str, int, Sequence[int | str] | None]] = {
        _AUDIO: (_AUDIO, f, ["samples"])
    }
    outputs.update({r: (f"stat{i}", f, None) for i, r in enumerate(reductions)})
    return _subgraph(model, _generator_inputs(), outputs, "kokoro_generator_probe")


def _windowed_generator(
    model: onnx.ModelProto, reductions: list[str], channels: list[int]
) -> onnx.ModelProto:
    """The generator with its norm statistics read from one input ``norm_stats`` [sum(C)]:
    entry i is ``norm_stats[offset_i : offset_i + C_i]`` reshaped to [1, C_i, 1]."""
    extra, offset = [], 0
    consts: list[onnx.TensorProto] = [
        numpy_helper.from_array(np.array([1, -1, 1], dtype=np.int64), "norm_stats/shape")
    ]
    for i, (reduction, count) in enumerate(zip(reductions, channels, strict=True)):
        starts, ends = f"norm_stats/{i}/start", f"norm_stats/{i}/end"
        consts += [
            numpy_helper.from_array(np.array([offset], dtype=np.int64), starts),
            numpy_helper.from_array(np.array([offset + count], dtype=np.int64), ends),
        ]
        sliced = f"norm_stats/{i}/slice"
        extra += [
            helper.make_node("Slice", ["norm_stats", starts, ends], [sliced], name=sliced),
            helper.make_node(
                "Reshape", [sliced, "norm_stats/shape"], [reduction], name=f"norm_stats/{i}"
            ),
        ]
        offset += count
    base = onnx.ModelProto()
    base.CopyFrom(model)
    resize = _phase_resize(base)
    extra += _upsample_by_kernel(resize, consts)
    # The reductions are now made by the Slice/Reshape nodes, the phase upsampling by the
    # kernel: drop their old producers.
    dropped = set(reductions) | {resize.output[0]}
    kept_nodes = [n for n in base.graph.node if not (set(n.output) & dropped)]
    del base.graph.node[:]
    base.graph.node.extend(kept_nodes)
    base.graph.initializer.extend(consts)
    inputs = _generator_inputs()
    inputs["norm_stats"] = ("norm_stats", TensorProto.FLOAT, [offset])
    f = TensorProto.FLOAT
    return _subgraph(
        base, inputs, {_AUDIO: (_AUDIO, f, ["samples"])}, "kokoro_generator_windowed", extra
    )


def _phase_resize(model: onnx.ModelProto) -> onnx.NodeProto:
    """The linear ``Resize`` (x300) that upsamples the source phase from frames to samples."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    frontier, seen = [_PHASE], set()
    while frontier:
        tensor = frontier.pop()
        for node in consumers.get(tensor, []):
            if node.op_type == "Resize":
                return node
            if id(node) not in seen and node.op_type in ("Mul", "Transpose", "Div", "Add"):
                seen.add(id(node))
                frontier.extend(node.output)
    raise ValueError("no Resize after the source phase")


def _upsample_by_kernel(
    resize: onnx.NodeProto, consts: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    """Nodes computing ``resize`` (linear, half_pixel, x HOP, [1, 9, W] -> [1, 9, HOP*W]) as an
    edge-padded depthwise ConvTranspose with a triangular kernel.

    Same values, but the interpolation weights no longer depend on the absolute sample index
    (ONNX Runtime's Resize computes its source coordinate in float32 from the output index, so
    the same frame gets slightly different weights at another position; the generator is
    sensitive enough to phase that this shows up as ~0.2 dB of spectral difference between a
    window and the whole decode). With the kernel, a window is bit-identical to the whole decode.
    """
    attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
    if (
        attrs.get("mode") != b"linear"
        or attrs.get("coordinate_transformation_mode") != b"half_pixel"
    ):
        raise ValueError(f"unexpected phase Resize {attrs}")
    taps = np.arange(2 * HOP, dtype=np.float64)
    kernel = np.maximum(0.0, 1.0 - np.abs((taps + 0.5) / HOP - 1.0)).astype(np.float32)
    prefix = "phase_upsample"
    consts += [
        numpy_helper.from_array(np.tile(kernel, (HARMONICS, 1, 1)), f"{prefix}/kernel"),
        numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 1], dtype=np.int64), f"{prefix}/pads"),
        numpy_helper.from_array(np.array([HOP + HOP // 2], dtype=np.int64), f"{prefix}/start"),
        numpy_helper.from_array(np.array([-HOP // 2 - HOP], dtype=np.int64), f"{prefix}/end"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), f"{prefix}/axis"),
    ]
    return [
        helper.make_node("Pad", [resize.input[0], f"{prefix}/pads"], [f"{prefix}/padded"],
                         mode="edge", name=f"{prefix}/pad"),
        helper.make_node("ConvTranspose", [f"{prefix}/padded", f"{prefix}/kernel"],
                         [f"{prefix}/full"], strides=[HOP], group=HARMONICS,
                         kernel_shape=[2 * HOP], name=f"{prefix}/conv"),
        helper.make_node("Slice", [f"{prefix}/full", f"{prefix}/start", f"{prefix}/end",
                                   f"{prefix}/axis"], [resize.output[0]], name=f"{prefix}/crop"),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SplitModels:
    """The cached graphs of one model file."""

    front: Path  # tokens, style, speed -> durations, x, f0 (precision of the shipped model)
    generator: Path  # x, f0, phase, style, norm_stats -> audio
    probe: Path  # x, f0, phase, style -> audio, stat0..statN (for calibration)
    layout: Path  # JSON: reductions (names) and their channel counts
    key: str  # identifies model + format + precision (name the statistics files with it)

    def channels(self) -> list[int]:
        return list(json.loads(self.layout.read_text())["channels"])


def split_model(
    model: Path, cache: Path, *, generator_precision: Precision = "fp32"
) -> SplitModels:
    """Build (once) and cache the FRONT, windowed GENERATOR and PROBE graphs of ``model``.

    The front keeps the shipped precision (so durations, hence word timings, are those of the
    shipped model). The generator is the shipped int8 one or its float32 dequantization.
    Files are written atomically, like the gateway's timed model.
    """
    stat = model.stat()
    digest = hashlib.sha256(
        f"{model.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{_FORMAT}".encode()
    ).hexdigest()[:16]
    key = f"{digest}-{generator_precision}"
    paths = SplitModels(
        front=cache / f"{digest}-front.onnx",
        generator=cache / f"{key}-generator.onnx",
        probe=cache / f"{key}-probe.onnx",
        layout=cache / f"{key}-layout.json",
        key=key,
    )
    if all(p.is_file() for p in (paths.front, paths.generator, paths.probe, paths.layout)):
        return paths
    cache.mkdir(parents=True, exist_ok=True)
    shipped = onnx.load(str(model))
    if not paths.front.is_file():
        save_atomically(paths.front, _front(shipped))
    source = dequantize(shipped) if generator_precision == "fp32" else shipped
    reductions = _norm_reductions(source)
    save_atomically(paths.probe, _probe(source, reductions))
    channels = _probe_channels(paths.probe, len(reductions))
    save_atomically(paths.generator, _windowed_generator(source, reductions, channels))
    layout = {"format": _FORMAT, "reductions": reductions, "channels": channels}
    save_atomically(paths.layout, json.dumps(layout).encode())
    return paths


def _probe_channels(probe: Path, count: int) -> list[int]:
    """Channel count of each norm reduction, from one small run of the probe."""
    session = inference_session(probe, threads=1)
    frames = 8
    outputs = session.run(
        None,
        {
            "x": np.zeros((1, 512, frames), np.float32),
            "f0": np.full((1, frames), 100.0, np.float32),
            "phase": np.zeros((1, frames, HARMONICS), np.float32),
            "style": np.zeros((1, 256), np.float32),
        },
    )
    shapes = [o.shape for o in outputs[1:]]
    if len(shapes) != count or any(len(s) != 3 or s[0] != 1 or s[2] != 1 for s in shapes):
        raise ValueError(f"unexpected norm statistics shapes {shapes}")
    return [int(s[1]) for s in shapes]


def save_atomically(target: Path, data: bytes | onnx.ModelProto) -> None:
    """Write ``target`` through a temporary file, so a concurrent reader never sees half of it."""
    partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    if isinstance(data, bytes):
        partial.write_bytes(data)
    else:
        onnx.save(data, str(partial))
    partial.replace(target)


def inference_session(
    model: Path, threads: int, *, spin_wait: bool = False
) -> ort.InferenceSession:
    """An ONNX Runtime CPU session of ``model`` on ``threads`` cores.

    Without ``spin_wait`` its threads sleep between operations: spinning threads starve the event
    loop on few cores (bench/first_audio.py: p95 time to first audio 1245 ms with spinning, 708 ms
    without, on 2 cores). Raises BackendError if the file cannot be loaded.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise BackendError(f"kokoro: cannot load the model {model}: {exc}") from exc
