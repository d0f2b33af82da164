"""Audio out: framing with carry-over, one Opus encoder per stream, drain, cut, Ogg files."""

from __future__ import annotations

import io
import itertools

import av
import numpy as np
import pytest

from gateway.audio.codecs import OpusDecoder, OpusEncoder, OpusOptions, Pcm16Encoder, opus_head
from gateway.audio.framing import AudioOut, Frame
from gateway.audio.ogg import OggOpusWriter

RATE = 24000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A sum of gliding harmonics with a syllable-rate envelope: compressible like speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * voice * envelope).astype(np.float32)


def _chunks(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    bounds = np.cumsum([0, *sizes])
    pieces = [signal[a:b] for a, b in itertools.pairwise(bounds)]
    return [*pieces, signal[bounds[-1] :]]


def _decode(frames: list[Frame]) -> np.ndarray:
    decoder = OpusDecoder(RATE)
    parts = [decoder.decode(f.data) for f in frames]
    return np.concatenate([*parts, decoder.finish()])


def _best_alignment(reference: np.ndarray, decoded: np.ndarray) -> tuple[int, float]:
    """The lag of ``reference`` inside ``decoded`` and the correlation there."""
    best = (0, -1.0)
    for lag in range(0, 400):
        candidate = decoded[lag : lag + len(reference)]
        if len(candidate) < len(reference):
            break
        correlation = float(np.corrcoef(reference, candidate)[0, 1])
        best = max(best, (lag, correlation), key=lambda pair: pair[1])
    return best


def test_opus_frames_are_contiguous_and_decode_to_the_input() -> None:
    signal = _speechlike(1.5)
    out = AudioOut(OpusEncoder(OpusOptions()))
    frames: list[Frame] = []
    for chunk in _chunks(signal, [7, 480, 1000, 13, 4800, 481]):
        frames += out.write(chunk)
    frames += out.drain()
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert [f.sample_start for f in frames] == [i * 480 for i in range(len(frames))]
    assert out.sent_end >= len(signal) + out.preskip  # everything written has been sent
    decoded = _decode(frames)
    assert len(decoded) == out.sent_end
    lag, correlation = _best_alignment(signal, decoded)
    assert abs(lag - out.preskip) <= 6  # input sample i plays at timeline i + preskip
    assert correlation > 0.8  # lossy, yet the same waveform


def test_chunking_does_not_change_the_packets() -> None:
    """One encoder for the stream, partial frames carried over: chunk boundaries are invisible."""
    signal = _speechlike(1.0, seed=1)
    whole = AudioOut(OpusEncoder(OpusOptions()))
    expected = whole.write(signal) + whole.drain()
    chunked = AudioOut(OpusEncoder(OpusOptions()))
    got: list[Frame] = []
    for chunk in _chunks(signal, [1, 2, 3, 500, 479, 960, 17]):
        got += chunked.write(chunk)
    got += chunked.drain()
    assert [f.data for f in got] == [f.data for f in expected]


def test_recreating_the_encoder_per_chunk_would_change_the_packets() -> None:
    """The previous test can fail: a fresh encoder per chunk produces different audio."""
    signal = _speechlike(0.4, seed=2)
    one = AudioOut(OpusEncoder(OpusOptions()))
    continuous = one.write(signal[:4800]) + one.write(signal[4800:])
    restarted = AudioOut(OpusEncoder(OpusOptions())).write(signal[:4800])
    restarted += AudioOut(OpusEncoder(OpusOptions())).write(signal[4800:])
    assert [f.data for f in continuous] != [f.data for f in restarted]


def test_drain_pushes_out_the_tail_and_is_idempotent() -> None:
    out = AudioOut(OpusEncoder(OpusOptions()))
    frames = out.write(np.full(100, 0.1, np.float32))
    assert frames == []  # not a whole frame yet
    tail = out.drain()
    assert len(tail) == 2  # the padded frame, and one more for the encoder's lookahead
    assert out.cursor == out.sent_end + out.preskip
    assert out.drain() == []  # nothing new was written


def test_a_cut_drops_the_unsent_frames_and_the_next_turn_decodes_cleanly() -> None:
    out = AudioOut(OpusEncoder(OpusOptions()))
    loud = 0.5 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE).astype(np.float32)
    made = out.write(loud[:12000])  # 25 frames made; only 5 of them reach the client
    sent = made[:5]
    out.cut(frames_kept=5)
    end = out.sent_end
    assert end == 5 * 480
    assert out.cursor == end + out.preskip  # the next sample plays after the encoder delay
    after = out.write(np.zeros(2400, np.float32)) + out.drain()
    assert after[0].sample_start == end
    assert [f.seq for f in sent + after] == list(range(len(sent + after)))
    decoded = _decode(sent + after)
    # The old audio fades out within the encoder delay: no burst of the dropped frames.
    assert np.abs(decoded[end + out.preskip :]).max() < 0.001
    assert np.sqrt(np.mean(decoded[1000:2000] ** 2)) > 0.2  # the audio before the cut is intact


def test_dropping_frames_without_a_fresh_encoder_would_put_a_burst_in_the_next_turn() -> None:
    """Why a cut starts the encoder afresh: one that goes on after dropped packets makes the
    decoder play a burst of audio that was never sent."""
    out = AudioOut(OpusEncoder(OpusOptions()))
    loud = 0.5 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE).astype(np.float32)
    sent = out.write(loud[:12000])[:5]
    after = out.write(np.zeros(2400, np.float32)) + out.drain()  # the same encoder goes on
    decoded = _decode(sent + after)
    assert np.abs(decoded[5 * 480 + out.preskip : 5 * 480 + 480]).max() > 0.05


def test_pcm16_frames_are_exact() -> None:
    out = AudioOut(Pcm16Encoder(sample_rate=RATE, frame_ms=20))
    signal = np.linspace(-1, 1, 1000, dtype=np.float32)
    frames = out.write(signal) + out.drain()
    assert out.preskip == 0
    assert [len(f.data) for f in frames] == [960, 960, 960]
    pcm = np.frombuffer(b"".join(f.data for f in frames), "<i2")
    assert np.array_equal(pcm[:1000], np.rint(signal * 32767).astype(np.int16))
    assert not pcm[1000:].any()


@pytest.mark.parametrize("frame_ms", [10, 20, 40, 60])
def test_opus_frame_lengths(frame_ms: int) -> None:
    encoder = OpusEncoder(OpusOptions(frame_ms=frame_ms))
    assert encoder.frame_samples == RATE * frame_ms // 1000
    out = AudioOut(encoder)
    frames = out.write(_speechlike(0.5)) + out.drain()
    assert len(_decode(frames)) == len(frames) * encoder.frame_samples


def test_bitrate_setting_changes_the_size() -> None:
    signal = _speechlike(2.0)
    sizes = {}
    for bitrate in (12000, 64000):
        out = AudioOut(OpusEncoder(OpusOptions(bitrate=bitrate)))
        sizes[bitrate] = sum(len(f.data) for f in out.write(signal) + out.drain())
    seconds = len(signal) / RATE
    assert sizes[12000] * 8 / seconds < 16000
    assert sizes[64000] > 2 * sizes[12000]


def test_ogg_file_plays_back_with_the_right_length() -> None:
    encoder = OpusEncoder(OpusOptions())
    out = AudioOut(encoder)
    signal = _speechlike(2.5)
    frames = out.write(signal) + out.drain()
    assert encoder.head == opus_head(preskip=encoder.preskip, sample_rate=RATE)
    buffer = io.BytesIO()
    writer = OggOpusWriter(buffer, head=encoder.head, frame_samples=480, sample_rate=RATE)
    for frame in frames:
        writer.write(frame.data)
    writer.close()
    buffer.seek(0)
    with av.open(buffer, mode="r", format="ogg") as container:
        decoded = sum(int(frame.samples) for frame in container.decode(audio=0))
    # ffmpeg honours the pre-skip: the file holds the written samples plus the end padding.
    assert decoded == 2 * (out.sent_end - encoder.preskip)
