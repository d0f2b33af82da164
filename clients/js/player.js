/**
 * The page side of the player: an AudioWorkletNode fed with decoded 48 kHz audio, and the
 * playback clock it reports.
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

export class Player {
  /**
   * Load the worklet into `context` (once per context) and connect a player node.
   * @param {AudioContext} context an AudioContext running at 48000 Hz
   * @param {{jitterMs?: number}} [options]
   */
  static async create(context, { jitterMs = 60 } = {}) {
    if (context.sampleRate !== OUTPUT_RATE) {
      throw new Error(
        `the player needs an AudioContext at ${OUTPUT_RATE} Hz, got ${context.sampleRate} Hz ` +
          `(create it with new AudioContext({sampleRate: ${OUTPUT_RATE}}))`,
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
