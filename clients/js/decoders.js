/**
 * Audio frame decoders: Opus with WebCodecs, Opus with a WebAssembly libopus where WebCodecs is
 * missing, and PCM16. Each turns the frames of one session, in `seq` order, into 48 kHz mono
 * float samples placed on the session timeline.
 *
 * Timeline: a frame at `sample_start` p (24 kHz) decodes to 48 kHz samples starting at 2 * p
 * (docs/protocol.md, section 6). No pre-skip is trimmed, so decoded positions are protocol
 * positions.
 * @module tts-gateway-client/decoders
 */

/** The rate the decoders output and the player runs at. */
export const OUTPUT_RATE = 48000;

const OPUS_CONFIG = Object.freeze({ codec: "opus", sampleRate: OUTPUT_RATE, numberOfChannels: 1 });

/**
 * @callback OutputCallback
 * @param {number} position 48 kHz position on the session timeline of the first sample
 * @param {Float32Array} samples mono samples at 48 kHz (owned by the callee)
 * @returns {void}
 */

/**
 * @typedef {object} FrameDecoder
 * @property {"webcodecs" | "wasm" | "pcm16"} kind
 * @property {(data: Uint8Array, sampleStart: number) => void} decode
 *   decode one frame; `sampleStart` is its position at the stream rate (24 kHz)
 * @property {() => Promise<void>} settled
 *   resolves once every frame given so far has been output
 * @property {() => void} close
 */

/** Whether this browser decodes Opus with WebCodecs. Needs a secure context. */
export async function webCodecsOpusSupported() {
  if (typeof globalThis.AudioDecoder !== "function") return false;
  try {
    const { supported } = await globalThis.AudioDecoder.isConfigSupported(OPUS_CONFIG);
    return Boolean(supported);
  } catch {
    return false;
  }
}

/**
 * A decoder for the session's `ready.format`.
 * @param {{format: string, sample_rate: number}} ready
 * @param {{prefer?: "auto" | "webcodecs" | "wasm", onOutput: OutputCallback,
 *          onError: (error: Error) => void}} options
 * @returns {Promise<FrameDecoder>}
 */
export async function createFrameDecoder(ready, { prefer = "auto", onOutput, onError }) {
  if (ready.sample_rate * 2 !== OUTPUT_RATE) {
    throw new Error(`this client plays 24000 Hz streams; the gateway sent ${ready.sample_rate}`);
  }
  if (ready.format === "pcm16") return new Pcm16Decoder(onOutput);
  if (ready.format !== "opus") throw new Error(`unknown audio format ${ready.format}`);
  if (prefer !== "wasm" && (await webCodecsOpusSupported())) {
    return new WebCodecsOpusDecoder(onOutput, onError);
  }
  if (prefer === "webcodecs") {
    throw new Error(
      "WebCodecs AudioDecoder cannot decode Opus here (it needs a secure context: " +
        "https, localhost or 127.0.0.1); use decoder: 'auto' to fall back to WebAssembly",
    );
  }
  return WasmOpusDecoder.create(onOutput, onError);
}

/** Counts frames in and out, for `settled()`. */
class Progress {
  constructor() {
    this.submitted = 0;
    this.completed = 0;
    /** @type {{target: number, resolve: () => void}[]} */
    this.waiters = [];
  }

  settled() {
    if (this.completed >= this.submitted) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target: this.submitted, resolve: () => resolve(undefined) }));
  }

  complete() {
    this.completed++;
    this.waiters = this.waiters.filter((w) => {
      if (this.completed < w.target) return true;
      w.resolve();
      return false;
    });
  }

  /** Release every waiter (the decoder is closed or failed). */
  release() {
    this.completed = this.submitted;
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }
}

/** Opus through the browser's WebCodecs `AudioDecoder` (raw packets, no description). */
class WebCodecsOpusDecoder {
  /** @param {OutputCallback} onOutput @param {(error: Error) => void} onError */
  constructor(onOutput, onError) {
    this.kind = /** @type {const} */ ("webcodecs");
    this._progress = new Progress();
    this._decoder = new AudioDecoder({
      output: (audioData) => {
        try {
          const samples = new Float32Array(audioData.numberOfFrames);
          audioData.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
          // The chunk's timestamp is its timeline position in microseconds (set in decode()).
          onOutput(Math.round((audioData.timestamp * OUTPUT_RATE) / 1e6), samples);
        } finally {
          audioData.close();
          this._progress.complete();
        }
      },
      error: (error) => {
        this._progress.release();
        onError(new Error(`WebCodecs Opus decoder failed: ${error.message}`));
      },
    });
    this._decoder.configure(OPUS_CONFIG);
  }

  /** @param {Uint8Array} data @param {number} sampleStart */
  decode(data, sampleStart) {
    if (this._decoder.state !== "configured") return;
    this._progress.submitted++;
    this._decoder.decode(
      new EncodedAudioChunk({
        type: "key",
        timestamp: Math.round((sampleStart * 1e6 * 2) / OUTPUT_RATE),
        data,
      }),
    );
  }

  settled() {
    return this._progress.settled();
  }

  close() {
    if (this._decoder.state !== "closed") this._decoder.close();
    this._progress.release();
  }
}

/** @type {Promise<any> | null} */
let wasmModule = null;

/** Opus through libopus compiled to WebAssembly (the vendored `opus-decoder` package). */
class WasmOpusDecoder {
  /** @param {OutputCallback} onOutput @param {(error: Error) => void} onError */
  static async create(onOutput, onError) {
    if (wasmModule === null) {
      // A UMD build: imported for its side effect, it defines globalThis["opus-decoder"].
      wasmModule = import(new URL("./vendor/opus-decoder/opus-decoder.min.js", import.meta.url).href)
        .then(() => globalThis["opus-decoder"]);
    }
    const { OpusDecoder } = await wasmModule;
    const decoder = new OpusDecoder({ channels: 1, sampleRate: OUTPUT_RATE, preSkip: 0 });
    await decoder.ready;
    return new WasmOpusDecoder(decoder, onOutput, onError);
  }

  /** @param {any} decoder @param {OutputCallback} onOutput @param {(e: Error) => void} onError */
  constructor(decoder, onOutput, onError) {
    this.kind = /** @type {const} */ ("wasm");
    this._decoder = decoder;
    this._onOutput = onOutput;
    this._onError = onError;
    this._closed = false;
  }

  /** @param {Uint8Array} data @param {number} sampleStart */
  decode(data, sampleStart) {
    if (this._closed) return;
    const decoded = this._decoder.decodeFrame(data);
    if (decoded.errors.length > 0) {
      this._onError(new Error(`Opus decoder failed: ${decoded.errors[0].message}`));
    }
    if (decoded.samplesDecoded > 0) this._onOutput(sampleStart * 2, decoded.channelData[0]);
  }

  settled() {
    return Promise.resolve();
  }

  close() {
    if (!this._closed) this._decoder.free();
    this._closed = true;
  }
}

/** Little-endian 16-bit PCM at 24 kHz, upsampled to 48 kHz by linear interpolation. */
class Pcm16Decoder {
  /** @param {OutputCallback} onOutput */
  constructor(onOutput) {
    this.kind = /** @type {const} */ ("pcm16");
    this._onOutput = onOutput;
    this._previous = 0;
  }

  /** @param {Uint8Array} data @param {number} sampleStart */
  decode(data, sampleStart) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const count = data.byteLength >> 1;
    const samples = new Float32Array(count * 2);
    let previous = this._previous;
    for (let i = 0; i < count; i++) {
      const value = view.getInt16(2 * i, true) / 32768;
      samples[2 * i] = (previous + value) / 2;
      samples[2 * i + 1] = value;
      previous = value;
    }
    this._previous = previous;
    this._onOutput(sampleStart * 2, samples);
  }

  settled() {
    return Promise.resolve();
  }

  close() {}
}
