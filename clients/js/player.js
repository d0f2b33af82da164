/**
 * The players: decoded 48 kHz audio in, sound out, and the playback clock.
 *
 * - `Player`: an AudioWorkletNode (player-worklet.js) with its own queue, played on the audio
 *   thread. Needs `AudioContext.audioWorklet`, which browsers offer only in a secure context
 *   (https, localhost, 127.0.0.1).
 * - `ScheduledPlayer`: the fallback without AudioWorklet. Each decoded frame becomes an
 *   AudioBufferSourceNode started at the exact context time where the previous one ends; the
 *   clock is read from `AudioContext.currentTime`. Same interface and the same clock.
 * @module tts-gateway-client/player
 */

import { OUTPUT_RATE } from "./decoders.js";

/** How long `clear()` waits for the audio thread before it answers from the last report. */
const CLEAR_TIMEOUT_MS = 250;

/** @type {WeakMap<BaseAudioContext, Promise<void>>} */
const loadedContexts = new WeakMap();

/**
 * @typedef {object} Clock
 * @property {number} session client session number of the audio last played
 * @property {number} pos 48 kHz timeline position just after the last sample played
 * @property {number} buffered samples (48 kHz) queued in the player
 * @property {boolean} playing false while the jitter buffer fills or after it ran dry
 * @property {number} frame context frame at which `pos` is output
 * @property {number} dry times the queue ran out while playing
 */

/** @param {BaseAudioContext} context */
function checkRate(context) {
  if (context.sampleRate !== OUTPUT_RATE) {
    throw new Error(
      `the player needs an AudioContext at ${OUTPUT_RATE} Hz, got ${context.sampleRate} Hz ` +
        `(create it with new AudioContext({sampleRate: ${OUTPUT_RATE}}))`,
    );
  }
}

/** Whether `context` can run an AudioWorklet (browsers offer it in secure contexts only). */
export function hasAudioWorklet(context) {
  return typeof context.audioWorklet?.addModule === "function" && typeof AudioWorkletNode === "function";
}

export class Player {
  /**
   * Load the worklet into `context` (once per context) and connect a player node.
   * @param {AudioContext} context an AudioContext running at 48000 Hz
   * @param {{jitterMs?: number}} [options]
   */
  static async create(context, { jitterMs = 60 } = {}) {
    checkRate(context);
    if (!hasAudioWorklet(context)) {
      throw new Error(
        "this page has no AudioWorklet: browsers offer it only in a secure context " +
          "(https, http://localhost, http://127.0.0.1)",
      );
    }
    let loaded = loadedContexts.get(context);
    if (loaded === undefined) {
      loaded = context.audioWorklet.addModule(new URL("./player-worklet.js", import.meta.url));
      loadedContexts.set(context, loaded);
    }
    await loaded;
    const node = new AudioWorkletNode(context, "tts-gateway-player", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: {
        startSamples: Math.round((jitterMs * OUTPUT_RATE) / 1000),
        reportSamples: 1024,
      },
    });
    node.connect(context.destination);
    return new Player(context, node);
  }

  /** @param {AudioContext} context @param {AudioWorkletNode} node */
  constructor(context, node) {
    /** Which player this is (`stats.player`). */
    this.kind = /** @type {const} */ ("worklet");
    this.context = context;
    this._node = node;
    /** @type {Clock} */
    this.clock = { session: 0, pos: 0, buffered: 0, playing: false, frame: 0, dry: 0 };
    /** @type {(clock: Clock) => void} */
    this.onclock = () => {};
    this._nextId = 1;
    /** @type {Map<number, (result: {dropped: boolean}) => void>} */
    this._marks = new Map();
    /** @type {Map<number, (stop: {session: number, pos: number}) => void>} */
    this._clears = new Map();
    node.port.onmessage = (event) => this._receive(event.data);
  }

  /**
   * Queue decoded audio.
   * @param {number} session @param {number} pos 48 kHz position of samples[0]
   * @param {Float32Array} samples given away (transferred to the audio thread)
   */
  push(session, pos, samples) {
    this._node.port.postMessage({ type: "audio", session, pos, data: samples }, [samples.buffer]);
  }

  /**
   * Resolves once everything queued before it has been played (`dropped: false`), or was dropped
   * by `clear()` (`dropped: true`).
   * @returns {Promise<{dropped: boolean}>}
   */
  mark() {
    const id = this._nextId++;
    return new Promise((resolve) => {
      this._marks.set(id, resolve);
      this._node.port.postMessage({ type: "mark", id });
    });
  }

  /**
   * Stop playback at once and drop everything queued. Resolves with where playback stopped.
   * @returns {Promise<{session: number, pos: number}>}
   */
  clear() {
    const id = this._nextId++;
    return new Promise((resolve) => {
      this._clears.set(id, resolve);
      this._node.port.postMessage({ type: "clear", id });
      // A suspended or closed context never answers: fall back to the last clock report.
      setTimeout(() => {
        if (!this._clears.delete(id)) return;
        resolve({ session: this.clock.session, pos: this.clock.pos });
      }, CLEAR_TIMEOUT_MS);
    });
  }

  /**
   * The playback position now, between two clock reports: the last report plus the time
   * played since, within what was buffered.
   * @returns {{session: number, pos: number}}
   */
  now() {
    const { session, pos, buffered, playing, frame } = this.clock;
    if (!playing) return { session, pos };
    const elapsed = Math.round(this.context.currentTime * OUTPUT_RATE) - frame;
    return { session, pos: pos + Math.max(0, Math.min(elapsed, buffered)) };
  }

  /** Disconnect the node; pending marks resolve as dropped. */
  close() {
    this._node.port.onmessage = null;
    this._node.disconnect();
    for (const resolve of this._marks.values()) resolve({ dropped: true });
    this._marks.clear();
    for (const resolve of this._clears.values()) resolve({ ...this.clock });
    this._clears.clear();
  }

  /** @param {any} message */
  _receive(message) {
    switch (message.type) {
      case "clock":
        this.clock = message;
        this.onclock(message);
        break;
      case "mark": {
        const resolve = this._marks.get(message.id);
        this._marks.delete(message.id);
        resolve?.({ dropped: false });
        break;
      }
      case "cleared": {
        for (const id of message.marks) {
          this._marks.get(id)?.({ dropped: true });
          this._marks.delete(id);
        }
        this.clock = { ...this.clock, session: message.session, pos: message.pos, buffered: 0, playing: false };
        this.onclock(this.clock);
        const resolve = this._clears.get(message.id);
        this._clears.delete(message.id);
        resolve?.({ session: message.session, pos: message.pos });
        break;
      }
    }
  }
}

/** The fade when stopping, as in the worklet: 4 ms, at once but without a click. */
const FADE_S = 0.004;
/** How often the scheduled player reads its clock (and answers marks). */
const TICK_MS = 20;
/** Lead before the first buffer of a (re)start, for the main thread's scheduling jitter. */
const START_LEAD_S = 0.03;
/** A buffer that would start sooner than this is late: playback ran dry. */
const LATE_S = 0.003;

/**
 * @typedef {{session: number, pos: number, data: Float32Array, frame: number | null,
 *            source: AudioBufferSourceNode | null} | {mark: number}} QueueItem
 *   `frame`: the context frame at which the item starts playing, once scheduled
 */

/**
 * The player without AudioWorklet: decoded frames scheduled as AudioBufferSourceNodes, back to
 * back at exact context frames, on the main thread. Used where `AudioContext.audioWorklet` is
 * missing (a page that is not a secure context). The clock is read from the context's
 * `currentTime` every 20 ms and whenever asked (`now()`).
 */
export class ScheduledPlayer {
  /**
   * @param {AudioContext} context an AudioContext running at 48000 Hz
   * @param {{jitterMs?: number}} [options]
   */
  static async create(context, { jitterMs = 60 } = {}) {
    checkRate(context);
    return new ScheduledPlayer(context, Math.round((jitterMs * OUTPUT_RATE) / 1000));
  }

  /** @param {AudioContext} context @param {number} startSamples */
  constructor(context, startSamples) {
    /** Which player this is (`stats.player`). */
    this.kind = /** @type {const} */ ("scheduled");
    this.context = context;
    this._startSamples = startSamples;
    /** @type {Clock} */
    this.clock = { session: 0, pos: 0, buffered: 0, playing: false, frame: 0, dry: 0 };
    /** @type {(clock: Clock) => void} */
    this.onclock = () => {};
    this._nextId = 1;
    /** @type {Map<number, (result: {dropped: boolean}) => void>} */
    this._marks = new Map();
    /** @type {QueueItem[]} audio not finished yet, and marks, in order */
    this._queue = [];
    /** Context frame where the next scheduled buffer starts (while playing). */
    this._nextFrame = 0;
    this._lastArrival = 0;
    this._gain = this._newGain();
    this._timer = setInterval(() => this._tick(), TICK_MS);
  }

  /**
   * Queue decoded audio.
   * @param {number} session @param {number} pos 48 kHz position of samples[0]
   * @param {Float32Array} samples
   */
  push(session, pos, samples) {
    if (samples.length === 0) return;
    const item = { session, pos, data: samples, frame: null, source: null };
    this._queue.push(item);
    this._lastArrival = this.context.currentTime;
    if (this.clock.playing) {
      if (this._nextFrame / OUTPUT_RATE >= this.context.currentTime + LATE_S) this._schedule(item);
      else this._ranDry();
    }
    if (!this.clock.playing) this._maybeStart(false);
    this._tick();
  }

  /**
   * Resolves once everything queued before it has been played (`dropped: false`), or was dropped
   * by `clear()` (`dropped: true`).
   * @returns {Promise<{dropped: boolean}>}
   */
  mark() {
    const id = this._nextId++;
    return new Promise((resolve) => {
      this._marks.set(id, resolve);
      this._queue.push({ mark: id });
      this._tick();
    });
  }

  /**
   * Stop playback at once (a 4 ms fade) and drop everything queued. Resolves with where
   * playback stopped.
   * @returns {Promise<{session: number, pos: number}>}
   */
  clear() {
    const now = this.context.currentTime;
    const { session, pos } = this._positionAt(now);
    const gain = this._gain;
    gain.gain.setValueAtTime(1, now);
    gain.gain.linearRampToValueAtTime(0, now + FADE_S);
    for (const item of this._queue) {
      if ("mark" in item) {
        this._marks.get(item.mark)?.({ dropped: true });
        this._marks.delete(item.mark);
      } else if (item.source !== null) {
        item.source.stop(Math.max(now + FADE_S, item.frame / OUTPUT_RATE));
      }
    }
    setTimeout(() => gain.disconnect(), 100);
    this._gain = this._newGain();
    this._queue = [];
    this.clock = { ...this.clock, session, pos, buffered: 0, playing: false, frame: this._frame() };
    this.onclock(this.clock);
    return Promise.resolve({ session, pos });
  }

  /**
   * The playback position now, read from the audio clock.
   * @returns {{session: number, pos: number}}
   */
  now() {
    return this._positionAt(this.context.currentTime);
  }

  /** Stop and disconnect; pending marks resolve as dropped. */
  close() {
    clearInterval(this._timer);
    for (const item of this._queue) {
      if ("mark" in item) this._marks.get(item.mark)?.({ dropped: true });
      else item.source?.stop();
    }
    this._marks.clear();
    this._queue = [];
    this._gain.disconnect();
  }

  _newGain() {
    const gain = this.context.createGain();
    gain.connect(this.context.destination);
    return gain;
  }

  _frame() {
    return Math.round(this.context.currentTime * OUTPUT_RATE);
  }

  /** Samples queued and not played yet (scheduled or waiting). */
  _buffered(frameNow) {
    let total = 0;
    for (const item of this._queue) {
      if ("mark" in item) continue;
      const played = item.frame === null ? 0 : Math.max(0, Math.min(item.data.length, frameNow - item.frame));
      total += item.data.length - played;
    }
    return total;
  }

  /** Start playing if the jitter buffer holds enough, or audio stopped coming (a short reply). */
  _maybeStart(waited) {
    const waiting = this._buffered(this._frame());
    if (waiting === 0) return;
    if (waiting < this._startSamples && !waited) return;
    this._nextFrame = Math.ceil((this.context.currentTime + START_LEAD_S) * OUTPUT_RATE);
    this.clock = { ...this.clock, playing: true };
    for (const item of this._queue) {
      if (!("mark" in item) && item.frame === null) this._schedule(item);
    }
  }

  /** @param {{session: number, pos: number, data: Float32Array, frame: number | null, source: AudioBufferSourceNode | null}} item */
  _schedule(item) {
    const buffer = this.context.createBuffer(1, item.data.length, OUTPUT_RATE);
    buffer.copyToChannel(item.data, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this._gain);
    item.frame = this._nextFrame;
    item.source = source;
    source.start(item.frame / OUTPUT_RATE);
    this._nextFrame += item.data.length;
  }

  /** The scheduled audio ran out while playing: wait for the jitter buffer again. */
  _ranDry() {
    this.clock = { ...this.clock, playing: false, dry: this.clock.dry + 1 };
  }

  /** @param {number} time a context time @returns {{session: number, pos: number}} */
  _positionAt(time) {
    const frameNow = Math.round(time * OUTPUT_RATE);
    let { session, pos } = this.clock;
    for (const item of this._queue) {
      if ("mark" in item) continue;
      if (item.frame === null || item.frame >= frameNow) break;
      session = item.session;
      pos = item.pos + Math.min(item.data.length, frameNow - item.frame);
    }
    return { session, pos };
  }

  /** Read the clock: finish played items, answer marks, notice a dry queue, report. */
  _tick() {
    const frameNow = this._frame();
    const before = this.clock;
    let { session, pos } = this._positionAt(this.context.currentTime);
    while (this._queue.length > 0) {
      const head = this._queue[0];
      if ("mark" in head) {
        this._queue.shift();
        this._marks.get(head.mark)?.({ dropped: false });
        this._marks.delete(head.mark);
        continue;
      }
      if (head.frame === null || head.frame + head.data.length > frameNow) break;
      this._queue.shift(); // played to its end
      head.source?.disconnect();
      session = head.session;
      pos = head.pos + head.data.length;
    }
    let { playing, dry } = this.clock;
    if (playing && this._nextFrame <= frameNow) {
      playing = false; // everything scheduled has been played
      dry++;
    }
    const buffered = this._buffered(frameNow);
    this.clock = { session, pos, buffered, playing, frame: frameNow, dry };
    if (!playing && buffered > 0) {
      const waited = this.context.currentTime - this._lastArrival >= this._startSamples / OUTPUT_RATE;
      if (waited) this._maybeStart(true);
    }
    const changed =
      before.pos !== this.clock.pos ||
      before.session !== this.clock.session ||
      before.playing !== this.clock.playing ||
      before.buffered !== this.clock.buffered ||
      before.dry !== this.clock.dry;
    if (changed) this.onclock(this.clock);
  }
}
