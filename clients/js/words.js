/**
 * Word timings of one session and the words reached by playback.
 *
 * Pure logic, no I/O: the client feeds it `words` messages and playback positions.
 * @module tts-gateway-client/words
 */

/**
 * @typedef {import("./tts-gateway.js").Word} Word
 * @typedef {import("./tts-gateway.js").WordsMessage} WordsMessage
 */

/** The words of a session, each kept by its `char_start`, and which of them have been reached. */
export class WordTimeline {
  constructor() {
    /** @type {Map<number, Word>} */
    this._byStart = new Map();
    /** @type {Word[] | null} words in text order; rebuilt after a change */
    this._sorted = null;
    /** Words announced so far: every word before `_reached` in text order has started playing. */
    this._reached = 0;
    /** `char_start` of the last word announced; -1 before the first. */
    this._lastStart = -1;
  }

  /**
   * Keep the words of a `words` message. A word replaces the one with the same `char_start`
   * (docs/protocol.md, "Keeping a segment's words"); words already announced are not replaced.
   * @param {WordsMessage} message
   */
  add(message) {
    for (const word of message.words) {
      if (word.char_start <= this._lastStart) continue;
      this._byStart.set(word.char_start, {
        ...word,
        segment: message.segment,
        estimated: message.estimated,
      });
    }
    this._sorted = null;
  }

  /** Every word kept, in text order. @returns {Word[]} */
  words() {
    if (this._sorted === null) {
      this._sorted = [...this._byStart.values()].sort((a, b) => a.char_start - b.char_start);
      this._reached = this._sorted.findIndex((w) => w.char_start > this._lastStart);
      if (this._reached < 0) this._reached = this._sorted.length;
    }
    return this._sorted;
  }

  /**
   * The words whose start playback has now reached and that were not announced yet, in text
   * order. A word is announced once, even when a later message moves it.
   * @param {number} position playback position on the session timeline (24 kHz samples)
   * @returns {Word[]}
   */
  advance(position) {
    const words = this.words();
    const reached = [];
    while (this._reached < words.length && words[this._reached].sample_start <= position) {
      const word = words[this._reached++];
      this._lastStart = word.char_start;
      reached.push(word);
    }
    return reached;
  }

  /**
   * The word sounding at `position`: the last word announced, while `position` is before its
   * end; `null` in the pauses between words.
   * @param {number} position
   * @returns {Word | null}
   */
  current(position) {
    const words = this.words();
    const last = words[this._reached - 1];
    if (last === undefined || position >= last.sample_end) return null;
    return last;
  }

  /** The last word announced, or null. @returns {Word | null} */
  get lastReached() {
    return this.words()[this._reached - 1] ?? null;
  }

  /** Forget the words not announced yet (their audio was dropped by a cancel). */
  dropUnreached() {
    const words = this.words();
    for (const word of words.slice(this._reached)) this._byStart.delete(word.char_start);
    this._sorted = null;
  }
}

/**
 * Code points of a string, as the gateway counts characters (docs/protocol.md, section 5).
 * @param {string} text
 * @returns {number}
 */
export function codePointLength(text) {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Whether a string is valid Unicode text (no lone surrogate: the gateway refuses those).
 * @param {string} text
 */
export function isWellFormed(text) {
  return typeof text.isWellFormed === "function"
    ? text.isWellFormed()
    : !LONE_SURROGATE.test(text);
}
