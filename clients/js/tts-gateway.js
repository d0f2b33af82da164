/**
 * Browser client for the tts-gateway streaming protocol (`/v1/stream`, docs/protocol.md).
 *
 * Streams text to the gateway over a WebSocket, decodes the Opus audio (WebCodecs, or
 * WebAssembly where WebCodecs is missing), plays it through an AudioWorklet with a small jitter
 * buffer, and keeps the playback clock: where playback is on the session timeline and which word
 * is being heard. No build step: import it from a `<script type="module">`.
 *
 * ```js
 * import { TtsGatewayClient } from "/client/tts-gateway.js";
 * const tts = new TtsGatewayClient({ voice: "jf_alpha" });
 * tts.addEventListener("word", (event) => console.log(event.detail.text));
 * button.onclick = () => tts.speak("Hello there! How are you?");  // audio needs a user gesture
 * ```
 * @module tts-gateway-client
 */

import { createFrameDecoder, OUTPUT_RATE } from "./decoders.js";
import { hasAudioWorklet, Player, ScheduledPlayer } from "./player.js";
import { decode, encode } from "./vendor/msgpack/index.mjs";
import { codePointLength, isWellFormed, WordTimeline } from "./words.js";

export { codePointLength, WordTimeline } from "./words.js";
export { webCodecsOpusSupported } from "./decoders.js";

/** The protocol version this client speaks (`ready.protocol`). */
export const PROTOCOL_VERSION = 1;

/** The stream rate: every `sample_*` position counts samples at this rate. */
const STREAM_RATE = 24000;

/**
 * A socket that closes mid-turn with one of these (1006: cut without a close frame), or a fatal
 * error with one of these codes, is a gateway gone away: with `resume` on, the session goes on
 * on a new one (docs/protocol.md section 15).
 */
const RESUMABLE_CLOSES = new Set([1001, 1006, 1011, 1012, 1013, 1014, 4503]);
const RESUMABLE_ERRORS = new Set(["shutting_down", "over_capacity", "internal_error"]);

/** An error from the gateway (its `error` message) or from the connection. */
export class GatewayError extends Error {
  /**
   * @param {string} code a protocol error code (docs/protocol.md section 10), or one of this
   *   client's: `connect_failed`, `timeout`, `connection_closed`, `resume_failed` (the
   *   connection dropped mid-turn and no gateway took the session again), `protocol_error`,
   *   `audio` (the page cannot play audio, or a frame could not be decoded)
   * @param {string} message
   * @param {{fatal?: boolean, ref?: string | null, closeCode?: number | null,
   *          charStart?: number | null, charEnd?: number | null}} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.fatal = details.fatal ?? false;
    this.ref = details.ref ?? null;
    this.closeCode = details.closeCode ?? null;
    this.charStart = details.charStart ?? null;
    this.charEnd = details.charEnd ?? null;
  }

  /** Whether opening a session again may succeed (the reconnect policy retries these). */
  get retryable() {
    return ["connect_failed", "timeout", "backend_unavailable"].includes(this.code);
  }
}

/** A GatewayError from the gateway's `error` message. @param {any} m */
const errorOf = (m) =>
  new GatewayError(m.code, m.message, { fatal: m.fatal, ref: m.ref, charStart: m.char_start, charEnd: m.char_end });

/** Whether a new session for a resume may open on a later try. @param {unknown} error */
const resumeRetryable = (error) =>
  error instanceof GatewayError && (error.retryable || RESUMABLE_ERRORS.has(error.code));

function defaultUrl() {
  const location = globalThis.location;
  if (location && /^https?:$/.test(location.protocol)) {
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/stream`;
  }
  return "ws://127.0.0.1:8765/v1/stream";
}

const DEFAULTS = Object.freeze({
  backend: undefined,
  voice: undefined,
  lang: undefined,
  speed: undefined,
  format: undefined,
  bitrate: undefined,
  frameMs: undefined,
  shortFirstSegment: undefined,
  lexicon: undefined,
  ssml: undefined,
  protocols: undefined,
  token: undefined,
  decoder: "auto",
  player: "auto",
  jitterMs: 60,
  audioContext: undefined,
  connectTimeoutMs: 10000,
  reconnect: Object.freeze({ attempts: 3, delayMs: 500, maxDelayMs: 4000 }),
  resume: false,
  resumeUrls: Object.freeze([]),
});

/** @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `attempt()` until it resolves, under a reconnect policy: `attempts` more tries after the first,
 * `delayMs` apart, doubled each time up to `maxDelayMs`. Rejects with an error `retry` refuses,
 * or with the last one.
 * @template T
 * @param {{attempts: number, delayMs: number, maxDelayMs: number}} policy
 * @param {() => Promise<T>} attempt @param {(error: unknown) => boolean} retry
 * @returns {Promise<T>}
 */
async function withRetries({ attempts, delayMs, maxDelayMs }, attempt, retry) {
  let lastError;
  for (let tried = 0; tried <= attempts; tried++) {
    if (tried > 0) await sleep(Math.min(maxDelayMs, delayMs * 2 ** (tried - 1)));
    try {
      return await attempt();
    } catch (error) {
      lastError = error;
      if (!retry(error)) break;
    }
  }
  throw lastError;
}

/** The `start` message for the client's options. @param {any} options */
function startMessage(options) {
  /** @type {Record<string, unknown>} */
  const start = {
    type: "start",
    backend: options.backend,
    voice: options.voice,
    lang: options.lang,
    speed: options.speed,
    format: options.format,
    bitrate: options.bitrate,
    frame_ms: options.frameMs,
    short_first_segment: options.shortFirstSegment,
    lexicon: options.lexicon,
    ssml: options.ssml,
  };
  for (const key of Object.keys(start)) {
    if (start[key] === undefined || start[key] === null) delete start[key];
  }
  return start;
}

/**
 * A message from the gateway; throws a `protocol_error` GatewayError for a frame that is not one.
 * @param {ArrayBuffer | string} data
 */
function parseMessage(data) {
  const refuse = (/** @type {string} */ text) => new GatewayError("protocol_error", text, { fatal: true });
  if (typeof data === "string") throw refuse("the gateway sent a text frame");
  let message;
  try {
    message = decode(new Uint8Array(data));
  } catch (error) {
    throw refuse(`cannot decode a message from the gateway: ${error}`);
  }
  if (message === null || typeof message !== "object" || typeof (/** @type {any} */ (message).type) !== "string") {
    throw refuse("a message from the gateway is not a map with a type");
  }
  return /** @type {any} */ (message);
}

/** Stop listening to a socket and close it. @param {WebSocket} socket */
function drop(socket) {
  socket.onopen = socket.onmessage = socket.onclose = null;
  if (socket.readyState <= WebSocket.OPEN) socket.close();
}

/**
 * A socket whose gateway session is ready.
 * @typedef {object} Link
 * @property {WebSocket} socket
 * @property {any} ready the `ready` message
 * @property {(ArrayBuffer | string)[]} inbox frames that came after `ready`, until a session
 *   takes the socket over
 * @property {CloseEvent | null} closeEvent the socket closed before that
 * @property {import("./decoders.js").FrameDecoder | null} decoder for its audio
 */

/**
 * Open a WebSocket to `url`, send `start`, wait for `ready`, then for `decoderFor(ready)`, all
 * within `timeoutMs`. Rejects with a GatewayError when the gateway cannot be reached, refuses
 * the session or does not answer in time, or the decoder cannot be made (`audio`).
 * @param {string} url @param {string | string[] | undefined} protocols
 * @param {object} start @param {number} timeoutMs
 * @param {(ready: any) => Promise<import("./decoders.js").FrameDecoder>} decoderFor
 * @returns {Promise<Link>}
 */
function handshake(url, protocols, start, timeoutMs, decoderFor) {
  return new Promise((resolve, reject) => {
    /** @type {WebSocket | null} */
    let socket = null;
    let finished = false;
    const fail = (/** @type {GatewayError} */ error) => {
      finished = true;
      clearTimeout(timer);
      if (socket !== null) drop(socket);
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new GatewayError("timeout", `no answer from ${url} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      socket = new WebSocket(url, protocols);
    } catch (error) {
      fail(new GatewayError("connect_failed", `cannot open ${url}: ${error}`));
      return;
    }
    const opened = socket;
    /** @type {Link} */
    const link = { socket: opened, ready: null, inbox: [], closeEvent: null, decoder: null };
    opened.binaryType = "arraybuffer";
    opened.onopen = () => opened.send(encode(start));
    opened.onclose = (event) => {
      link.closeEvent = event;
      if (link.ready !== null) return; // the session that takes the socket over handles it
      const closeCode = event.code;
      fail(new GatewayError("connect_failed", `cannot reach the gateway at ${url} (close code ${closeCode})`, { closeCode }));
    };
    opened.onmessage = (event) => {
      if (link.ready !== null) {
        link.inbox.push(event.data);
        return;
      }
      let message;
      try {
        message = parseMessage(event.data);
      } catch (error) {
        fail(/** @type {GatewayError} */ (error));
        return;
      }
      if (message.type === "error") {
        fail(errorOf(message));
      } else if (message.type === "ready" && message.protocol !== PROTOCOL_VERSION) {
        fail(new GatewayError("protocol_error", `the gateway speaks protocol ${message.protocol}, not ${PROTOCOL_VERSION}`));
      } else if (message.type === "ready") {
        link.ready = message;
        decoderFor(message).then(
          (decoder) => {
            if (finished) {
              decoder.close();
              return;
            }
            finished = true;
            clearTimeout(timer);
            link.decoder = decoder;
            resolve(link);
          },
          (error) => fail(new GatewayError("audio", messageOf(error))),
        );
      }
    };
  });
}

/**
 * The requests (`speak`/`stream`) of one generation: they send their text one after another, in
 * call order. A cancel or a close starts a new generation: waiting requests give up at once.
 */
function newTurns() {
  /** @type {() => void} */
  let interrupt = () => {};
  /** @type {Promise<void>} */
  const interrupted = new Promise((resolve) => {
    interrupt = () => resolve(undefined);
  });
  return { tail: /** @type {Promise<unknown>} */ (Promise.resolve()), interrupted, interrupt };
}

/**
 * Cut text into pieces of at most `limit` code points.
 * @param {string} text @param {number} limit
 */
function* pieces(text, limit) {
  if (text.length <= limit) {
    yield text;
    return;
  }
  let piece = "";
  let count = 0;
  for (const codePoint of text) {
    piece += codePoint;
    if (++count === limit) {
      yield piece;
      piece = "";
      count = 0;
    }
  }
  if (piece !== "") yield piece;
}

/**
 * Resume (docs/protocol.md section 15): what a new session must be sent so that the listener
 * hears the rest of a session whose socket dropped mid-turn, and where its offsets start on the
 * old session's. `codePoints` is the session text sent (one code point each), `settledChars` the
 * end of the text the gateway reported spoken (the `char_end` of the last segment whose
 * `segment_end` arrived, or a `cancelled.unspoken_end`), `receivedEnd` the end of the audio
 * received (timeline samples), `nextSeq` and `nextSegment` one past the last `audio.seq` and
 * `segment` seen, `pending` the `flush` and `cancel` messages not answered yet, in the order
 * sent, each with the number of code points sent before it, `ended` whether `end` was sent. Send
 * `messages` after the new session's `ready`, and map its messages with {@link shiftResumed}.
 * @param {{codePoints: string[], settledChars: number, receivedEnd: number, nextSeq: number,
 *          nextSegment: number, ended: boolean,
 *          pending?: {offset: number, message: {type: string, id?: number | string | null}}[]}} record
 */
export function resumePlan({ codePoints, settledChars, receivedEnd, nextSeq, nextSegment, ended, pending = [] }) {
  // A cancel not answered drops the text before it: none of that is sent again.
  const cancels = pending.filter((p) => p.message.type === "cancel").map((p) => p.offset);
  const chars = Math.max(settledChars, ...cancels);
  /** @type {{type: string, text?: string, id?: number | string | null}[]} */
  const messages = [];
  let position = chars;
  const textUpTo = (/** @type {number} */ end) => {
    if (end > position) messages.push({ type: "text", text: codePoints.slice(position, end).join("") });
    position = Math.max(position, end);
  };
  for (const { offset, message } of pending) {
    textUpTo(offset);
    // A cancel's position was on the old session's timeline: sent again without it.
    messages.push(message.type === "cancel" ? { type: "cancel", id: message.id } : message);
  }
  textUpTo(codePoints.length);
  if (ended) messages.push({ type: "end" });
  return { chars, samples: receivedEnd, seq: nextSeq, segment: nextSegment, messages };
}

/**
 * A message of a resumed session on the original session's offsets and timeline.
 * @param {any} m @param {{chars: number, samples: number, seq: number, segment: number}} plan
 */
export function shiftResumed(m, { chars, samples, seq, segment }) {
  const out = { ...m };
  const add = (/** @type {string[]} */ keys, /** @type {number} */ by) => {
    for (const key of keys) if (typeof out[key] === "number") out[key] += by;
  };
  add(["char_start", "char_end", "received_chars", "chars_received", "chars_spoken"], chars);
  add(["unspoken_start", "unspoken_end", "cut", "heard_start"], chars);
  add(["sample_start", "sample_end", "position"], samples);
  if (m.type === "audio") add(["seq"], seq);
  add(["segment"], segment);
  if (m.type === "words") {
    out.words = m.words.map((/** @type {any} */ w) => ({
      ...w,
      char_start: w.char_start + chars,
      char_end: w.char_end + chars,
      sample_start: w.sample_start + samples,
      sample_end: w.sample_end + samples,
    }));
  }
  return out;
}

/**
 * A flush or cancel sent and not answered yet: its message, and the code points sent before it.
 * @typedef {{id: number, offset: number, message: {type: string, id: number, position?: number},
 *            resolve: (m: any) => void, reject: (e: Error) => void}} Request
 */

/**
 * One session: its socket, decoder, words, text accounting and pending requests. Internal; the
 * client owns it. With the `resume` option, a socket that drops mid-turn is replaced by a new
 * gateway session that is sent the rest (`resume()`); the Session, its timeline and its pending
 * requests stay the same.
 */
class Session {
  /** @param {TtsGatewayClient} client @param {number} id */
  constructor(client, id) {
    this.client = client;
    this.id = id;
    /** @type {"connecting" | "open" | "ending" | "closed"} */
    this.state = "connecting";
    /** @type {WebSocket | null} */
    this.socket = null;
    /** @type {any} the first `ready`: the session's timeline and limits */
    this.ready = null;
    /** @type {import("./decoders.js").FrameDecoder | null} */
    this.decoder = null;
    this.words = new WordTimeline();
    /** @type {Map<number, any>} */
    this.segments = new Map();
    this.openSegment = /** @type {number | null} */ (null);
    /** @type {string[]} session text, one code point each */
    this.codePoints = [];
    /** A flush ended the last request: the next one is a new turn (separated by a space). */
    this.turnEnded = false;
    this.settledChars = 0;
    this.cancelling = 0;
    this.dropBefore = 0;
    this.playedPos = 0;
    this.lastDry = 0;
    this.nextRequestId = 1;
    /** One past the last `audio.seq` and `segment` seen (for a resume). */
    this.nextSeq = 0;
    this.nextSegment = 0;
    /** @type {Request[]} flushes not answered yet */
    this.flushes = [];
    /** @type {Request[]} cancels not answered yet */
    this.cancels = [];
    /** @type {any} */
    this.done = null;
    /** @type {{resolve: (m: any) => void, reject: (e: Error) => void}[]} */
    this.doneWaiters = [];
    /** @type {(() => void)[]} */
    this.roomWaiters = [];
    /** @type {GatewayError[]} */
    this.textErrors = [];
    /** @type {Promise<unknown>} */
    this.textLock = Promise.resolve();
    this.closing = false;
    /** The socket dropped and a new gateway session is being opened: sends are only recorded. */
    this.resuming = false;
    /** @type {ReturnType<typeof resumePlan> | null} where the current gateway session's offsets start */
    this.shift = null;
    /** @type {GatewayError | null} */
    this.closeError = null;
    this.stats = {
      framesReceived: 0,
      bytesReceived: 0,
      samplesDecoded: 0,
      samplesDropped: 0,
      receivedEnd: 0,
      underruns: 0,
      resumes: 0,
      progress: /** @type {any} */ (null),
    };
  }

  get sentChars() {
    return this.codePoints.length;
  }

  /** The last code point sent, or "". */
  lastChar() {
    return this.codePoints[this.codePoints.length - 1] ?? "";
  }

  /**
   * Where the audio of the text `[start, end)` begins: the `sample_start` of the first segment
   * holding some of it, or null if none was announced.
   * @param {number} start @param {number} end
   */
  sampleStartOf(start, end) {
    let first = null;
    for (const segment of this.segments.values()) {
      if (segment.char_end > start && segment.char_start < end) {
        if (first === null || segment.sample_start < first) first = segment.sample_start;
      }
    }
    return first;
  }

  /** Connect, send `start`, wait for `ready`. Rejects with a GatewayError. */
  async open() {
    const link = await this.connect(this.client.options.url);
    this.ready = link.ready;
    this.state = "open";
    this.take(link);
    this.drain(link);
  }

  /**
   * A new gateway session on `url` with the client's `start`, and a decoder for its audio
   * (within `connectTimeoutMs`).
   * @param {string} url @returns {Promise<Link>}
   */
  async connect(url) {
    const { options } = this.client;
    const protocols = await this.client._protocols();
    const decoderFor = (/** @type {any} */ ready) =>
      createFrameDecoder(ready, {
        prefer: options.decoder,
        onOutput: (pos, samples) => this.decoded(pos, samples),
        onError: (error) => this.client._emitError(new GatewayError("audio", error.message)),
      });
    return handshake(url, protocols, startMessage(options), options.connectTimeoutMs, decoderFor);
  }

  /** Make `link`'s socket and decoder this session's. @param {Link} link */
  take(link) {
    const { socket } = link;
    this.socket = socket;
    this.decoder = link.decoder;
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.closed(event);
  }

  /** Handle what came on `link` before the session took it over. @param {Link} link */
  drain(link) {
    for (const data of link.inbox.splice(0)) this.receive(data);
    if (link.closeEvent !== null) this.closed(link.closeEvent);
  }

  /** @param {ArrayBuffer | string} data */
  receive(data) {
    let message;
    try {
      message = parseMessage(data);
    } catch (error) {
      this.protocolError(/** @type {GatewayError} */ (error));
      return;
    }
    this.handle(this.shift === null ? message : shiftResumed(message, this.shift));
  }

  /** @param {GatewayError} error */
  protocolError(error) {
    this.client._emitError(error);
    this.closing = true;
    this.socket?.close();
  }

  /** @param {any} m a message, on this session's offsets and timeline */
  handle(m) {
    switch (m.type) {
      case "segment_start":
        this.segments.set(m.segment, m);
        this.openSegment = m.segment;
        this.nextSegment = Math.max(this.nextSegment, m.segment + 1);
        this.client._segmentStarted(this, m);
        break;
      case "words":
        if (this.cancelling === 0) this.words.add(m);
        break;
      case "audio":
        this.stats.framesReceived++;
        this.stats.bytesReceived += m.data.byteLength;
        this.stats.receivedEnd = m.sample_start + this.ready.frame_samples;
        this.nextSeq = m.seq + 1;
        this.client._audioReceived(this, m);
        this.decoder?.decode(m.data, m.sample_start);
        this.client._emit("audio", {
          session: this.ready.session,
          seq: m.seq,
          sample_start: m.sample_start,
          data: m.data,
        });
        break;
      case "segment_end": {
        if (this.openSegment === m.segment) this.openSegment = null;
        const start = this.segments.get(m.segment);
        if (start !== undefined) this.settle(start.char_end);
        break;
      }
      case "progress":
        this.stats.progress = m;
        this.client._emit("progress", { progress: m, stats: this.client.stats });
        break;
      case "flushed": {
        const index = this.flushes.findIndex((f) => f.id === m.id);
        if (index >= 0) this.flushes.splice(index, 1)[0].resolve(m);
        break;
      }
      case "cancelled":
        this.cancelling = Math.max(0, this.cancelling - 1);
        if (this.cancelling === 0) this.dropBefore = 2 * m.sample_end;
        this.openSegment = null;
        this.settle(m.unspoken_end);
        this.cancels.shift()?.resolve(m);
        break;
      case "backend_switched":
        this.nextSegment = Math.max(this.nextSegment, m.segment + 1);
        break;
      case "error":
        this.refused(m);
        break;
      case "done":
        this.done = m;
        this.state = "closed";
        for (const waiter of this.doneWaiters.splice(0)) waiter.resolve(m);
        break;
      default:
        break; // a message type from a newer gateway: ignored (section 14)
    }
  }

  /** @param {any} m an error message */
  refused(m) {
    if (m.fatal && RESUMABLE_ERRORS.has(m.code) && this.resumable()) {
      this.resume(`the gateway went away (${m.code})`, null);
      return;
    }
    const error = errorOf(m);
    if (m.code === "backend_error" && typeof m.char_end === "number") {
      if (this.openSegment !== null) this.openSegment = null;
      this.settle(m.char_end);
    }
    if (m.ref === "text") this.textErrors.push(error);
    if (m.ref === "flush") this.flushes.pop()?.reject(error); // refused flushes get no `flushed`
    if (m.ref === "cancel") this.cancels.shift()?.reject(error);
    if (m.ref === "end") for (const waiter of this.doneWaiters.splice(0)) waiter.reject(error);
    this.client._emitError(error);
  }

  /** @param {CloseEvent} event */
  closed(event) {
    if (RESUMABLE_CLOSES.has(event.code) && this.resumable()) {
      this.resume(`the connection closed (code ${event.code})`, event.code);
      return;
    }
    this.state = "closed";
    closeWhenSettled(this.decoder);
    if (this.done === null) {
      const reason = event.reason ? `: ${event.reason}` : "";
      this.lost(
        new GatewayError(
          "connection_closed",
          `the connection closed before the session ended (code ${event.code}${reason})`,
          { fatal: true, closeCode: event.code },
        ),
      );
    }
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  /** The session is gone: everything waiting on it fails with `error`. @param {GatewayError} error */
  lost(error) {
    this.state = "closed";
    this.closeError = error;
    if (!this.closing) this.client._emitError(error);
    for (const f of this.flushes.splice(0)) f.reject(error);
    for (const c of this.cancels.splice(0)) c.reject(error);
    for (const d of this.doneWaiters.splice(0)) d.reject(error);
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  /**
   * Whether a drop now is resumed: the `resume` option is on, the session was not closed here
   * and it is mid-turn (text not reported spoken, or a flush, cancel or `end` not answered).
   * Between turns nothing is lost: the next request opens a new session.
   */
  resumable() {
    if (!this.client.options.resume || this.closing || this.done !== null) return false;
    const waiting = this.flushes.length + this.cancels.length + this.doneWaiters.length;
    return this.sentChars > this.settledChars || waiting > 0;
  }

  /**
   * Go on on a new gateway session (docs/protocol.md section 15): opened on `resumeUrls`, then
   * `url` (a balancer), under the reconnect policy. Text, flushes, cancels and `end` sent
   * meanwhile are recorded and go out with the rest, in order. If no gateway takes it,
   * everything waiting fails with a `resume_failed` GatewayError.
   * @param {string} reason @param {number | null} closeCode
   */
  async resume(reason, closeCode) {
    this.resuming = true;
    if (this.socket !== null) drop(this.socket);
    this.socket = null;
    this.openSegment = null; // the segment in flight is spoken again, under a new number
    /** @type {Link} */
    let link;
    try {
      link = await withRetries(
        this.client.options.reconnect,
        () => this.reconnect(),
        (error) => !this.closing && resumeRetryable(error),
      );
    } catch (error) {
      this.resuming = false;
      if (this.closing) return; // close() failed what was waiting
      closeWhenSettled(this.decoder);
      const message = `${reason}, and no gateway took the session again: ${messageOf(error)}`;
      this.lost(new GatewayError("resume_failed", message, { fatal: true, closeCode }));
      return;
    }
    this.resuming = false;
    if (this.closing) {
      drop(link.socket);
      link.decoder?.close();
      return;
    }
    this.adopt(link, reason);
  }

  /** A new gateway session streaming as this one, on the first URL that takes it. */
  async reconnect() {
    const { url, resumeUrls } = this.client.options;
    let lastError;
    for (const target of [...resumeUrls, url]) {
      if (this.closing) throw new GatewayError("connection_closed", "the session was closed");
      try {
        const link = await this.connect(target);
        const { format, frame_samples: frameSamples } = link.ready;
        if (format === this.ready.format && frameSamples === this.ready.frame_samples) return link;
        drop(link.socket);
        link.decoder?.close();
        throw new GatewayError(
          "protocol_error",
          `the new session streams ${format} in frames of ${frameSamples}, not as the old one`,
        );
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  /**
   * Go on on `link`: send it what the gateway had not reported spoken, and map its messages
   * onto this session's offsets and timeline.
   * @param {Link} link @param {string} reason
   */
  adopt(link, reason) {
    const plan = resumePlan(this.resumeRecord());
    this.shift = plan;
    closeWhenSettled(this.decoder); // a new Opus stream: a new decoder
    this.take(link);
    for (const message of plan.messages) {
      if (message.type !== "text") this.send(message);
      else for (const piece of pieces(message.text ?? "", this.textLimit())) this.send({ type: "text", text: piece });
    }
    this.stats.resumes++;
    this.client._emit("resumed", {
      ready: link.ready,
      resumes: this.stats.resumes,
      chars: plan.chars,
      samples: plan.samples,
      reason,
    });
    this.drain(link);
  }

  /** What {@link resumePlan} needs. */
  resumeRecord() {
    const pending = [...this.flushes, ...this.cancels].sort((a, b) => a.id - b.id);
    return {
      codePoints: this.codePoints,
      settledChars: this.settledChars,
      receivedEnd: this.stats.receivedEnd,
      nextSeq: this.nextSeq,
      nextSegment: this.nextSegment,
      ended: this.state === "ending",
      pending,
    };
  }

  /** @param {number} pos @param {Float32Array} samples */
  decoded(pos, samples) {
    this.stats.samplesDecoded += samples.length;
    if (pos < this.dropBefore || this.cancelling > 0) {
      this.stats.samplesDropped += samples.length;
      return;
    }
    this.client._player?.push(this.id, pos, samples);
  }

  /** Characters up to `charEnd` are settled: room for more text. @param {number} charEnd */
  settle(charEnd) {
    this.settledChars = Math.max(this.settledChars, charEnd);
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  /**
   * Send a message the caller has recorded (text in `codePoints`, a flush or cancel in its list,
   * `end` in `state`). While resuming, and on a socket that dropped where a resume may follow,
   * it goes out with the rest instead.
   * @param {object} message
   */
  send(message) {
    if (this.resuming) return;
    const socket = this.socket;
    if (socket !== null && socket.readyState === WebSocket.OPEN) {
      socket.send(encode(message));
      return;
    }
    const dropped = socket !== null && socket.readyState > WebSocket.OPEN && this.state !== "closed";
    if (dropped && this.client.options.resume && !this.closing) return; // its close event decides
    throw this.closeError ?? new GatewayError("connection_closed", "the session is closed");
  }

  /** The most code points sent in one `text` message. */
  textLimit() {
    const { max_message_bytes: maxBytes, max_pending_chars: maxPending } = this.ready;
    return Math.max(1, Math.min(Math.floor((maxBytes - 64) / 4), Math.floor(maxPending / 2)));
  }

  /**
   * Send text in order, cut to fit the message size and the pending-text limit (waiting for
   * room). Returns false if `alive()` turned false (a cancel) before all of it was sent.
   * @param {string} text @param {() => boolean} alive
   */
  sendText(text, alive) {
    const run = this.textLock.then(() => this.sendTextNow(text, alive));
    this.textLock = run.catch(() => {});
    return run;
  }

  /** @param {string} text @param {() => boolean} alive */
  async sendTextNow(text, alive) {
    for (const piece of pieces(text, this.textLimit())) {
      const count = codePointLength(piece);
      while (this.sentChars - this.settledChars + count > this.ready.max_pending_chars) {
        await new Promise((resolve) => this.roomWaiters.push(() => resolve(undefined)));
        if (this.state === "closed") throw this.closeError ?? new GatewayError("connection_closed", "the session is closed");
        if (!alive()) return false;
      }
      if (!alive()) return false;
      this.send({ type: "text", text: piece });
      for (const codePoint of piece) this.codePoints.push(codePoint);
    }
    return true;
  }

  /** @returns {Promise<any>} the `flushed` message */
  flush() {
    return this.request(this.flushes, { type: "flush", id: this.nextRequestId++ }, () => {
      this.turnEnded = true;
    });
  }

  /** @param {number} position @returns {Promise<any>} the `cancelled` message */
  cancel(position) {
    return this.request(this.cancels, { type: "cancel", id: this.nextRequestId++, position });
  }

  /**
   * Send a flush or cancel, kept in `list` until answered.
   * @param {Request[]} list @param {Request["message"]} message
   * @param {() => void} [sent] called once it is sent
   * @returns {Promise<any>} the answer
   */
  request(list, message, sent) {
    return new Promise((resolve, reject) => {
      list.push({ id: message.id, offset: this.sentChars, message, resolve, reject });
      try {
        this.send(message);
        sent?.();
      } catch (error) {
        list.pop();
        reject(error);
      }
    });
  }

  /** @returns {Promise<any>} the `done` message */
  end() {
    return new Promise((resolve, reject) => {
      this.doneWaiters.push({ resolve, reject });
      try {
        this.send({ type: "end" });
        this.state = "ending";
      } catch (error) {
        this.doneWaiters.pop();
        reject(error);
      }
    });
  }

  close() {
    this.closing = true;
    if (this.resuming) {
      this.resuming = false;
      closeWhenSettled(this.decoder);
      this.lost(new GatewayError("connection_closed", "the client was closed while the session was resuming", { fatal: true }));
    }
    this.state = "closed";
    if (this.socket !== null && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
  }

  /** @param {number} start @param {number} [end] code point offsets */
  textSlice(start, end) {
    return this.codePoints.slice(start, end).join("");
  }
}

/** Close a decoder once the frames given to it have been output. @param {import("./decoders.js").FrameDecoder | null} decoder */
function closeWhenSettled(decoder) {
  decoder?.settled().then(() => decoder.close());
}

/**
 * A speaker backed by the gateway: one WebSocket session at a time, opened when first needed.
 *
 * Events (`addEventListener`; the payload is `event.detail`):
 * - `word`: a word starts playing (a word map of `words`, plus `segment` and `estimated`).
 *   Every word is announced once, in text order.
 * - `progress`: the gateway's `progress` message, with the client's `stats`.
 * - `error`: a GatewayError (the gateway's `error` message, or a lost connection).
 * - `done`: the gateway's `done` message, once its audio has been played.
 * - `ready`: a session opened (the `ready` message). `cancelled`: the `cancelled` message.
 * - `resumed`: with the `resume` option, the socket dropped mid-turn and the session goes on on
 *   a new gateway session (`{ready, resumes, chars, samples, reason}`: its `ready`, the count so
 *   far, where the resent text starts and where its audio starts on the timeline, and why).
 */
export class TtsGatewayClient extends EventTarget {
  /** @param {Partial<import("./tts-gateway.js").ClientOptions>} [options] */
  constructor(options = {}) {
    super();
    const reconnect = { ...DEFAULTS.reconnect, ...(options.reconnect ?? {}) };
    this.options = { ...DEFAULTS, url: defaultUrl(), ...options, reconnect };
    if (!["auto", "webcodecs", "wasm"].includes(this.options.decoder)) {
      throw new TypeError(`decoder must be "auto", "webcodecs" or "wasm", not ${this.options.decoder}`);
    }
    if (!["auto", "worklet", "scheduled"].includes(this.options.player)) {
      throw new TypeError(`player must be "auto", "worklet" or "scheduled", not ${this.options.player}`);
    }
    /** @type {Session | null} the latest session */
    this._session = null;
    /** @type {Map<number, Session>} sessions whose audio may still be playing */
    this._sessions = new Map();
    /** @type {Promise<Session> | null} */
    this._opening = null;
    this._nextSession = 1;
    /** Incremented by every cancel: text and waits of an older generation are dropped. */
    this._generation = 0;
    /** Requests waiting to send their text, one after another. */
    this._turns = newTurns();
    /** Incremented by every close(): a session that opens after it is closed at once. */
    this._closeEpoch = 0;
    /** close() was called, and no session was opened since. */
    this._closed = false;
    /** @type {AudioContext | null} */
    this._context = null;
    this._ownContext = false;
    /** @type {Promise<Player | ScheduledPlayer> | null} */
    this._playerReady = null;
    /** @type {Player | ScheduledPlayer | null} */
    this._player = null;
    /** Time to first audio of the latest measured request. */
    this._measure = {
      start: 0,
      startChars: 0,
      session: 0,
      segmentSeen: false,
      firstAudioPos: /** @type {number | null} */ (null),
      firstAudioMs: /** @type {number | null} */ (null),
      firstSoundMs: /** @type {number | null} */ (null),
      running: false,
    };
  }

  /** The `ready` message of the latest session, or null before the first. */
  get ready() {
    return this._session?.ready ?? null;
  }

  /** `idle` (no session), `connecting`, `open`, `ending` or `closed` (also after `close()`). */
  get state() {
    if (this._closed) return "closed";
    // (The latest session is open already when its `ready` event is dispatched.)
    if (this._opening !== null && this._session?.state !== "open") return "connecting";
    return this._session?.state ?? "idle";
  }

  /**
   * Playback position on the latest session's timeline (samples at 24 kHz, as `sample_*` in the
   * protocol), or null without a session. Between clock reports it advances with the audio
   * clock; its resolution is about 20 ms.
   */
  get position() {
    const session = this._session;
    if (session === null) return null;
    return Math.floor(this._pos48(session) / 2);
  }

  /** The word sounding now (null in pauses and before the first word). */
  get currentWord() {
    const session = this._session;
    if (session === null) return null;
    return session.words.current(Math.floor(this._pos48(session) / 2));
  }

  /** Every word of the latest session kept so far, in text order. */
  get words() {
    return this._session?.words.words() ?? [];
  }

  /**
   * Measures of the latest session, for gauges and tests (a fresh object each time).
   * @returns {import("./tts-gateway.js").ClientStats}
   */
  get stats() {
    const session = this._session;
    const clock = this._player?.clock;
    const measure = this._measure;
    const pos48 = session === null ? 0 : this._pos48(session);
    // Audio received but not played yet; what a cancel dropped is not ahead of anything.
    const ahead48 =
      session === null
        ? 0
        : Math.max(0, 2 * session.stats.receivedEnd - Math.max(pos48, session.dropBefore));
    return {
      session: session?.ready?.session ?? null,
      decoder: session?.decoder?.kind ?? null,
      player: this._player?.kind ?? null,
      framesReceived: session?.stats.framesReceived ?? 0,
      bytesReceived: session?.stats.bytesReceived ?? 0,
      samplesDecoded: session?.stats.samplesDecoded ?? 0,
      samplesDropped: session?.stats.samplesDropped ?? 0,
      position: Math.floor(pos48 / 2),
      playing: clock?.playing ?? false,
      bufferedMs: clock ? (clock.buffered / OUTPUT_RATE) * 1000 : 0,
      aheadMs: session?.stats.framesReceived ? (ahead48 / OUTPUT_RATE) * 1000 : 0,
      gatewayBufferedMs: session?.stats.progress?.audio_buffered_ms ?? null,
      timeToFirstAudioMs: measure.firstAudioMs,
      timeToFirstSoundMs: measure.firstSoundMs,
      underruns: session?.stats.underruns ?? 0,
      charsSent: session?.sentChars ?? 0,
      resumes: session?.stats.resumes ?? 0,
    };
  }

  /**
   * The latest session's text between two code point offsets (the gateway's character offsets).
   * @param {number} start @param {number} [end]
   */
  textSlice(start, end) {
    return this._session?.textSlice(start, end) ?? "";
  }

  /**
   * Open a session now (otherwise the first `speak`/`stream` does). Resolves with `ready`.
   * Call it from a user gesture (a click) so that audio may start.
   */
  async connect() {
    const session = await this._sessionWithAudio(this._audio());
    return session.ready;
  }

  /**
   * Speak `text`: send it, flush, and resolve once its audio has been played.
   *
   * Requests are served in call order: a `speak` made while another is still sending waits for
   * it, and its text follows the earlier text in the session. A request that follows a flushed
   * one is a new turn, separated from it by a space (unless either side already has whitespace
   * there); text sent with `flush: false` is continued as is. A `cancel()` ends every request
   * sent or waiting.
   * @param {string} text
   * @param {import("./tts-gateway.js").SpeakOptions} [options] `flush: false` sends the text
   *   only (the gateway speaks complete sentences as they come); the promise then resolves once
   *   it is sent. `onStart({charStart, session})` is called when its text starts to be sent.
   * @returns {Promise<import("./tts-gateway.js").SpeakResult>}
   */
  speak(text, options) {
    if (typeof text !== "string") return Promise.reject(new TypeError("speak() takes a string"));
    return this.stream([text], options);
  }

  /**
   * Stream text from an (async) iterable, e.g. an LLM's tokens, then flush and resolve once all
   * of it has been played. A `cancel()` stops reading the source (its iterator is returned).
   * Requests are served in call order, as for `speak`.
   * @param {AsyncIterable<string> | Iterable<string>} source
   * @param {import("./tts-gateway.js").SpeakOptions} [options]
   * @returns {Promise<import("./tts-gateway.js").SpeakResult>}
   */
  async stream(source, { flush = true, onStart } = {}) {
    if (typeof source === "string") source = [source]; // not one message per character
    const generation = this._generation;
    const alive = () => generation === this._generation;
    const audio = this._audio(); // now, inside the user gesture that called us
    const turn = this._takeTurn();
    /** @type {Session | null} */
    let session = null;
    /** @type {number | null} */
    let charStart = null;
    /** @type {number | null} */
    let charEnd = null;
    /** @returns {import("./tts-gateway.js").SpeakResult} */
    const result = (/** @type {boolean} */ cancelled, /** @type {any} */ flushed) => {
      if (session !== null && charStart !== null && charEnd === null) charEnd = session.sentChars;
      const sampleStart =
        session !== null && charStart !== null && charEnd !== null
          ? session.sampleStartOf(charStart, charEnd)
          : null;
      return { cancelled, flushed, charStart, charEnd, sampleStart };
    };
    let errorsBefore = 0;
    /** @type {Promise<any> | null} */
    let flushing = null;
    try {
      await turn.ready;
      if (!alive()) return result(true, null);
      session = await this._sessionWithAudio(audio);
      if (!alive()) return result(true, null);
      const open = session;
      errorsBefore = open.textErrors.length;
      const begin = async (/** @type {string} */ first) => {
        const last = open.lastChar();
        if (open.turnEnded && last !== "" && !/\s/u.test(last) && !/^\s/u.test(first)) {
          if (!(await open.sendText(" ", alive))) return false;
        }
        open.turnEnded = false;
        charStart = open.sentChars;
        this._startMeasure(open, performance.now(), charStart);
        onStart?.({ charStart, session: open.ready.session });
        return true;
      };
      for await (const piece of source) {
        if (typeof piece !== "string") {
          throw new TypeError(`stream() takes strings, got ${typeof piece}`);
        }
        if (!isWellFormed(piece)) {
          throw new TypeError("the text holds a lone surrogate (not valid Unicode); the gateway refuses it");
        }
        if (!alive()) return result(true, null);
        if (piece === "") continue;
        if (charStart === null && !(await begin(piece))) return result(true, null);
        if (!(await open.sendText(piece, alive))) return result(true, null);
      }
      if (charStart === null) {
        charStart = open.sentChars;
        onStart?.({ charStart, session: open.ready.session });
      }
      charEnd = open.sentChars;
      if (!flush) return result(!alive(), null);
      if (!alive()) return result(true, null);
      flushing = open.flush(); // sent now: the next request's text follows the flush
    } finally {
      turn.release();
    }
    const flushed = await flushing;
    if (session.textErrors.length > errorsBefore) throw session.textErrors[session.textErrors.length - 1];
    if (flushed.cancelled || !alive()) return result(true, flushed);
    await session.decoder?.settled();
    const played = await this._player?.mark();
    return result(Boolean(played?.dropped) || !alive(), flushed);
  }

  /**
   * Ask the gateway to speak the text buffered so far now (an unfinished sentence too).
   * Resolves with the `flushed` message (all its audio sent), or null without a session.
   */
  async flush() {
    const session = this._session;
    if (session === null || session.state !== "open") return null;
    return session.flush();
  }

  /**
   * Barge-in: stop playback at once, drop the audio buffered, stop the running `stream()`s and
   * tell the gateway where playback stopped. Resolves with the `cancelled` message: what the
   * listener heard (`heard_text`, up to `cut`) and what they did not. Null without an open
   * session (playback is stopped all the same).
   * @returns {Promise<any>}
   */
  async cancel() {
    this._generation++;
    this._interruptTurns();
    this._measure.running = false;
    const session = this._session;
    const live = session !== null && (session.state === "open" || session.state === "ending");
    if (live) {
      session.cancelling++; // from now on its audio is decoded but not played, words ignored
      session.words.dropUnreached();
      session.turnEnded = false; // the gateway starts a new turn after a cancel by itself
    }
    const stop = this._player ? await this._player.clear() : null;
    if (!live) return null;
    let pos48 = session.playedPos;
    if (stop !== null && stop.session === session.id) pos48 = stop.pos;
    const latency = Math.round((this._context?.outputLatency ?? 0) * STREAM_RATE);
    const position = Math.max(0, Math.floor(pos48 / 2) - latency);
    try {
      const cancelled = await session.cancel(position);
      this._emit("cancelled", cancelled);
      return cancelled;
    } catch (error) {
      session.cancelling = Math.max(0, session.cancelling - 1);
      throw error;
    }
  }

  /**
   * No more text: the gateway speaks what is left and ends the session. Resolves with the `done`
   * message once all audio has been played (a later `speak` opens a new session). It comes
   * after the requests made before it: `speak(a); speak(b); end()` speaks both, then ends.
   * @returns {Promise<any>}
   */
  async end() {
    const turn = this._takeTurn();
    /** @type {Session | null} */
    let session = null;
    /** @type {Promise<any>} */
    let ending;
    try {
      await turn.ready;
      session = this._session;
      if (session === null || session.state === "connecting") return null;
      if (session.state === "closed") return session.done;
      const open = session;
      ending =
        open.state === "open"
          ? open.end()
          : new Promise((resolve, reject) => open.doneWaiters.push({ resolve, reject }));
    } finally {
      turn.release();
    }
    const done = await ending;
    await session.decoder?.settled();
    if (this._player !== null) await this._player.mark();
    this._emit("done", done);
    return done;
  }

  /**
   * Close the connection without ending the session, stop playback and release the audio.
   * `state` reads `closed` at once; a session still opening is closed as soon as it opens (its
   * `connect`/`speak` rejects with `connection_closed`). A later `speak` opens a new session.
   */
  async close() {
    this._generation++;
    this._closeEpoch++;
    this._closed = true;
    this._opening = null;
    this._interruptTurns();
    this._measure.running = false;
    this._session?.close();
    for (const session of this._sessions.values()) session.close();
    this._sessions.clear();
    if (this._player !== null) {
      await this._player.clear();
      this._player.close();
    }
    if (this._ownContext && this._context !== null) await this._context.close();
    this._player = null;
    this._playerReady = null;
    this._context = null;
  }

  // --- internals --------------------------------------------------------------------------

  /**
   * Create (or resume) the audio context at once, so that it happens inside the user gesture
   * that called us; the player follows asynchronously. Rejects with a GatewayError (`audio`)
   * when this page cannot play.
   * @returns {Promise<Player | ScheduledPlayer>}
   */
  _audio() {
    try {
      if (this._context === null) {
        this._context =
          this.options.audioContext ?? new AudioContext({ sampleRate: OUTPUT_RATE, latencyHint: "interactive" });
        this._ownContext = this.options.audioContext === undefined;
      }
    } catch (error) {
      return Promise.reject(new GatewayError("audio", `cannot create an AudioContext here: ${messageOf(error)}`));
    }
    if (this._context.state === "suspended") this._context.resume().catch(() => {});
    if (this._playerReady === null) {
      this._playerReady = this._createPlayer(this._context).then((player) => {
        player.onclock = (clock) => this._clock(clock);
        this._player = player;
        return player;
      });
      this._playerReady.catch(() => {
        this._playerReady = null;
      });
    }
    return this._playerReady;
  }

  /**
   * The AudioWorklet player where the page has AudioWorklet (a secure context), else the
   * scheduled-buffer player (option `player`).
   * @param {AudioContext} context
   */
  async _createPlayer(context) {
    const { player, jitterMs } = this.options;
    try {
      if (player === "scheduled") return await ScheduledPlayer.create(context, { jitterMs });
      if (player === "worklet" || hasAudioWorklet(context)) {
        try {
          return await Player.create(context, { jitterMs });
        } catch (error) {
          if (player === "worklet") throw error;
          // e.g. a Content-Security-Policy that refuses the worklet module: play without it
        }
      }
      return await ScheduledPlayer.create(context, { jitterMs });
    } catch (error) {
      throw new GatewayError("audio", `cannot play audio here: ${messageOf(error)}`);
    }
  }

  /**
   * A session to send text to, once the player is ready too. If the page cannot play, the
   * session opened for nothing is closed and this rejects with the `audio` GatewayError.
   * @param {Promise<unknown>} audio from `_audio()`
   * @returns {Promise<Session>}
   */
  async _sessionWithAudio(audio) {
    const opening = this._usableSession();
    try {
      await audio;
    } catch (error) {
      const session = await opening.catch(() => null);
      if (session !== null && session.sentChars === 0) session.close();
      throw error;
    }
    return opening;
  }

  /** The WebSocket subprotocols: `protocols`, plus the token's (`tts-gateway`, `bearer.<token>`). */
  async _protocols() {
    const { protocols, token } = this.options;
    if (token === undefined || token === null) return protocols;
    let value;
    try {
      value = typeof token === "function" ? await token() : token;
    } catch (error) {
      throw new GatewayError("connect_failed", `cannot get a token: ${messageOf(error)}`);
    }
    const list = protocols === undefined ? [] : [protocols].flat();
    if (!list.includes("tts-gateway")) list.push("tts-gateway");
    return [...list, `bearer.${value}`];
  }

  /** Wait for this request's turn to send (after the requests made before it). */
  _takeTurn() {
    const turns = this._turns;
    const previous = turns.tail;
    /** @type {() => void} */
    let release = () => {};
    const held = new Promise((resolve) => {
      release = () => resolve(undefined);
    });
    turns.tail = previous.then(() => held);
    return { ready: Promise.race([previous, turns.interrupted]), release };
  }

  /** A cancel or close: requests waiting for their turn give up, new ones do not wait. */
  _interruptTurns() {
    this._turns.interrupt();
    this._turns = newTurns();
  }

  /** The latest session if text can be sent to it, else a new one (reconnect policy). */
  _usableSession() {
    if (this._session !== null && this._session.state === "open") return Promise.resolve(this._session);
    if (this._opening === null) {
      this._closed = false;
      const opening = this._open().finally(() => {
        if (this._opening === opening) this._opening = null;
      });
      this._opening = opening;
    }
    return this._opening;
  }

  async _open() {
    const epoch = this._closeEpoch;
    const closedMeanwhile = () =>
      new GatewayError("connection_closed", "the client was closed while a session was opening");
    const session = await withRetries(
      this.options.reconnect,
      async () => {
        if (epoch !== this._closeEpoch) throw closedMeanwhile();
        const opening = new Session(this, this._nextSession++);
        await opening.open();
        return opening;
      },
      (error) => error instanceof GatewayError && error.retryable,
    );
    if (epoch !== this._closeEpoch) {
      session.close();
      throw closedMeanwhile();
    }
    this._session = session;
    this._sessions.set(session.id, session);
    this._emit("ready", session.ready);
    return session;
  }

  /** @param {Session} session */
  _pos48(session) {
    const now = this._player?.now();
    if (now !== undefined && now.session === session.id) return now.pos;
    return session.playedPos;
  }

  /** @param {import("./player.js").Clock} clock */
  _clock(clock) {
    const session = this._sessions.get(clock.session);
    if (session === undefined) return;
    if (clock.dry > session.lastDry) {
      // Ran dry while a segment was still being synthesized: an underrun, not a pause.
      if (session.openSegment !== null && session.cancelling === 0) session.stats.underruns++;
    }
    session.lastDry = clock.dry;
    session.playedPos = clock.pos;
    const measure = this._measure;
    if (
      measure.running &&
      measure.session === session.id &&
      measure.firstAudioPos !== null &&
      clock.pos > measure.firstAudioPos
    ) {
      measure.firstSoundMs = performance.now() - measure.start;
      measure.running = false;
    }
    for (const word of session.words.advance(Math.floor(clock.pos / 2))) this._emit("word", word);
    for (const [id, other] of this._sessions) {
      if (id < session.id && other.state === "closed") this._sessions.delete(id);
    }
  }

  /** @param {Session} session @param {number} start @param {number} startChars */
  _startMeasure(session, start, startChars) {
    const measure = this._measure;
    if (measure.running) return;
    Object.assign(measure, {
      start,
      startChars,
      session: session.id,
      segmentSeen: false,
      firstAudioPos: null,
      firstAudioMs: null,
      firstSoundMs: null,
      running: true,
    });
  }

  /** @param {Session} session @param {any} segment */
  _segmentStarted(session, segment) {
    const measure = this._measure;
    if (measure.running && measure.session === session.id && segment.char_end > measure.startChars) {
      measure.segmentSeen = true;
    }
  }

  /** @param {Session} session @param {any} audio */
  _audioReceived(session, audio) {
    const measure = this._measure;
    if (measure.running && measure.session === session.id && measure.segmentSeen && measure.firstAudioMs === null) {
      measure.firstAudioMs = performance.now() - measure.start;
      measure.firstAudioPos = 2 * audio.sample_start;
    }
  }

  /** @param {GatewayError} error */
  _emitError(error) {
    this._emit("error", error);
  }

  /** @param {string} type @param {unknown} detail */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
