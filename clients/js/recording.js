/**
 * Recording what was spoken: a session's audio frames kept as they arrive (the client's `audio`
 * events), cut to a range of the timeline, and written as a file: Ogg Opus (the Opus packets as
 * the gateway sent them, not re-encoded) or WAV (16-bit PCM at 24 kHz).
 *
 * ```js
 * import { TtsGatewayClient } from "/client/tts-gateway.js";
 * import { SessionRecorder } from "/client/recording.js";
 * const tts = new TtsGatewayClient();
 * const recorder = new SessionRecorder(tts);      // before the session opens
 * const result = await tts.speak("Hello there.");
 * const recording = recorder.clip(result.sampleStart, result.flushed.sample_end);
 * link.href = URL.createObjectURL(recording.ogg());  // or: await recording.wav()
 * ```
 * @module tts-gateway-client/recording
 */

/** The stream rate: every `sample_*` position counts samples at this rate. */
const STREAM_RATE = 24000;
/** Ogg Opus granule positions count samples at 48 kHz, whatever the input rate. */
const GRANULE_RATE = 48000;
/** Audio packets per Ogg page: about a second at 20 ms frames. */
const PACKETS_PER_PAGE = 50;

/**
 * Keeps the audio frames of the client's latest session, up to `maxSeconds` of the most recent.
 */
export class SessionRecorder {
  /**
   * @param {EventTarget} client a `TtsGatewayClient` (create the recorder before its session opens)
   * @param {{maxSeconds?: number}} [options]
   */
  constructor(client, { maxSeconds = 600 } = {}) {
    this._client = client;
    this._maxSeconds = maxSeconds;
    /** @type {any} the `ready` message of the session recorded */
    this.ready = null;
    /** @type {{seq: number, sample_start: number, data: Uint8Array}[]} */
    this._frames = [];
    /** @param {Event} event */
    this._onReady = (event) => {
      this.ready = /** @type {CustomEvent} */ (event).detail;
      this._frames = [];
    };
    /** @param {Event} event */
    this._onAudio = (event) => {
      const frame = /** @type {CustomEvent} */ (event).detail;
      if (this.ready === null || frame.session !== this.ready.session) return;
      this._frames.push({ seq: frame.seq, sample_start: frame.sample_start, data: frame.data });
      const keep = Math.ceil((this._maxSeconds * STREAM_RATE) / this.ready.frame_samples);
      if (this._frames.length > keep + 64) this._frames.splice(0, this._frames.length - keep);
    };
    client.addEventListener("ready", this._onReady);
    client.addEventListener("audio", this._onAudio);
  }

  /** Stop recording (the frames kept so far stay available to `clip`). */
  detach() {
    this._client.removeEventListener("ready", this._onReady);
    this._client.removeEventListener("audio", this._onAudio);
  }

  /**
   * The audio of the timeline range `[sampleStart, sampleEnd)` (24 kHz positions) of the latest
   * session, as far as it was received; null if none of it was.
   * @param {number} sampleStart @param {number} sampleEnd
   * @returns {Recording | null}
   */
  clip(sampleStart, sampleEnd) {
    const ready = this.ready;
    if (ready === null || !(sampleEnd > sampleStart)) return null;
    const size = ready.frame_samples;
    const inside = this._frames.filter(
      (f) => f.sample_start + size > sampleStart && f.sample_start < sampleEnd,
    );
    if (inside.length === 0) return null;
    let frames = inside;
    if (ready.format === "opus") {
      // One frame before the range, when there is one: the decoder's state is warm at its start.
      const before = this._frames.find((f) => f.seq === inside[0].seq - 1);
      if (before !== undefined) frames = [before, ...inside];
    }
    const received = inside[inside.length - 1].sample_start + size;
    const start = Math.max(sampleStart, frames[0].sample_start);
    return new Recording(ready, frames, start, Math.min(sampleEnd, received));
  }
}

/** A stretch of a session's audio, written as a file on demand. */
export class Recording {
  /**
   * @param {any} ready the session's `ready` message
   * @param {{seq: number, sample_start: number, data: Uint8Array}[]} frames consecutive frames
   *   covering `[sampleStart, sampleEnd)`
   * @param {number} sampleStart @param {number} sampleEnd 24 kHz timeline positions
   */
  constructor(ready, frames, sampleStart, sampleEnd) {
    this.ready = ready;
    this.frames = frames;
    this.sampleStart = sampleStart;
    this.sampleEnd = sampleEnd;
    /** `opus` or `pcm16`, as the session's audio. */
    this.format = ready.format;
  }

  /** Length in seconds. */
  get durationS() {
    return (this.sampleEnd - this.sampleStart) / STREAM_RATE;
  }

  /**
   * An Ogg Opus file of the Opus packets as sent, trimmed to the range by the pre-skip and the
   * last page's granule position; null for a `pcm16` session.
   * @returns {Blob | null}
   */
  ogg() {
    if (this.format !== "opus") return null;
    const first = this.frames[0].sample_start;
    const preSkip = 2 * (this.sampleStart - first);
    const bytes = oggOpus(
      this.frames.map((f) => f.data),
      {
        packetSamples: 2 * this.ready.frame_samples,
        preSkip,
        finalGranule: preSkip + 2 * (this.sampleEnd - this.sampleStart),
        inputRate: this.ready.sample_rate,
      },
    );
    return new Blob([bytes], { type: "audio/ogg; codecs=opus" });
  }

  /**
   * The samples at 24 kHz, mono, in [-1, 1]. Opus is decoded with the browser's
   * `decodeAudioData` (an OfflineAudioContext at 24 kHz).
   * @returns {Promise<Float32Array>}
   */
  async samples() {
    const length = this.sampleEnd - this.sampleStart;
    if (this.format === "pcm16") {
      const out = new Float32Array(length);
      for (const frame of this.frames) {
        const view = new DataView(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
        for (let i = 0; i < frame.data.byteLength >> 1; i++) {
          const at = frame.sample_start + i - this.sampleStart;
          if (at >= 0 && at < length) out[at] = view.getInt16(2 * i, true) / 32768;
        }
      }
      return out;
    }
    const ogg = /** @type {Blob} */ (this.ogg());
    const context = new OfflineAudioContext(1, 1, STREAM_RATE);
    const decoded = await context.decodeAudioData(await ogg.arrayBuffer());
    // Exactly the range: a decoder may keep a few samples past the last granule position.
    const out = new Float32Array(length);
    out.set(decoded.getChannelData(0).subarray(0, length));
    return out;
  }

  /** A WAV file: 16-bit PCM, mono, 24 kHz. @returns {Promise<Blob>} */
  async wav() {
    return new Blob([wav(await this.samples(), STREAM_RATE)], { type: "audio/wav" });
  }
}

/**
 * A WAV file (RIFF, 16-bit PCM, mono) of float samples in [-1, 1].
 * @param {Float32Array} samples @param {number} sampleRate
 * @returns {Uint8Array}
 */
export function wav(samples, sampleRate) {
  const bytes = new Uint8Array(44 + 2 * samples.length);
  const view = new DataView(bytes.buffer);
  const ascii = (at, text) => {
    for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i);
  };
  ascii(0, "RIFF");
  view.setUint32(4, 36 + 2 * samples.length, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true); // size of the fmt chunk
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, 2 * sampleRate, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  view.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i++) {
    const value = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + 2 * i, Math.round(value < 0 ? value * 32768 : value * 32767), true);
  }
  return bytes;
}

/**
 * An Ogg Opus stream (RFC 7845) of mono Opus packets.
 * @param {Uint8Array[]} packets
 * @param {{packetSamples: number, preSkip?: number, finalGranule?: number, inputRate?: number,
 *          serial?: number, vendor?: string}} options `packetSamples`: samples (at 48 kHz) of
 *   each packet; `preSkip` (48 kHz) is dropped at the start and `finalGranule` ends the stream
 *   (at most the packets' total)
 * @returns {Uint8Array}
 */
export function oggOpus(packets, options) {
  const { packetSamples, preSkip = 0, inputRate = STREAM_RATE, vendor = "tts-gateway" } = options;
  const serial = options.serial ?? Math.floor(Math.random() * 0xffffffff);
  const total = packets.length * packetSamples;
  const finalGranule = Math.min(options.finalGranule ?? total, total);

  const head = new Uint8Array(19);
  const headView = new DataView(head.buffer);
  head.set(new TextEncoder().encode("OpusHead"));
  head[8] = 1; // version
  head[9] = 1; // channels
  headView.setUint16(10, preSkip, true);
  headView.setUint32(12, inputRate, true);
  headView.setInt16(16, 0, true); // output gain
  head[18] = 0; // channel mapping family: mono or stereo, no table

  const vendorBytes = new TextEncoder().encode(vendor);
  const tags = new Uint8Array(8 + 4 + vendorBytes.length + 4);
  const tagsView = new DataView(tags.buffer);
  tags.set(new TextEncoder().encode("OpusTags"));
  tagsView.setUint32(8, vendorBytes.length, true);
  tags.set(vendorBytes, 12);
  tagsView.setUint32(12 + vendorBytes.length, 0, true); // no user comments

  const pages = [];
  let sequence = 0;
  pages.push(oggPage([head], { serial, sequence: sequence++, granule: 0, first: true }));
  pages.push(oggPage([tags], { serial, sequence: sequence++, granule: 0 }));
  let granule = 0;
  for (let i = 0; i < packets.length; ) {
    const page = [];
    let segments = 0;
    while (i < packets.length && page.length < PACKETS_PER_PAGE) {
      const needed = Math.floor(packets[i].length / 255) + 1;
      if (segments + needed > 255) break;
      page.push(packets[i]);
      segments += needed;
      granule += packetSamples;
      i++;
    }
    const last = i === packets.length;
    pages.push(
      oggPage(page, { serial, sequence: sequence++, granule: last ? finalGranule : granule, last }),
    );
  }
  const out = new Uint8Array(pages.reduce((sum, page) => sum + page.length, 0));
  let at = 0;
  for (const page of pages) {
    out.set(page, at);
    at += page.length;
  }
  return out;
}

/**
 * One Ogg page holding whole packets.
 * @param {Uint8Array[]} packets
 * @param {{serial: number, sequence: number, granule: number, first?: boolean, last?: boolean}} page
 */
function oggPage(packets, { serial, sequence, granule, first = false, last = false }) {
  const lacing = [];
  for (const packet of packets) {
    for (let left = packet.length; ; left -= 255) {
      lacing.push(Math.min(left, 255));
      if (left < 255) break;
    }
  }
  const bodyLength = packets.reduce((sum, packet) => sum + packet.length, 0);
  const page = new Uint8Array(27 + lacing.length + bodyLength);
  const view = new DataView(page.buffer);
  page.set([0x4f, 0x67, 0x67, 0x53]); // "OggS"
  page[4] = 0; // version
  page[5] = (first ? 0x02 : 0) | (last ? 0x04 : 0);
  view.setUint32(6, granule % 0x100000000, true);
  view.setUint32(10, Math.floor(granule / 0x100000000), true);
  view.setUint32(14, serial >>> 0, true);
  view.setUint32(18, sequence, true);
  page[26] = lacing.length;
  page.set(lacing, 27);
  let at = 27 + lacing.length;
  for (const packet of packets) {
    page.set(packet, at);
    at += packet.length;
  }
  view.setUint32(22, oggCrc(page), true); // computed with the checksum field zero
  return page;
}

/** @type {Uint32Array | null} */
let crcTable = null;

/** Ogg's CRC-32: polynomial 0x04c11db7, most significant bit first, no reflection, no final xor. */
function oggCrc(bytes) {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let value = i << 24;
      for (let bit = 0; bit < 8; bit++) {
        value = value & 0x80000000 ? (value << 1) ^ 0x04c11db7 : value << 1;
      }
      crcTable[i] = value >>> 0;
    }
  }
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) ^ crcTable[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  }
  return crc;
}
