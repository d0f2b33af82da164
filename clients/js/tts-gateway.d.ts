/**
 * Types of the tts-gateway browser client. Messages keep the wire's field names
 * (docs/protocol.md); values the client computes use camelCase.
 */

/** The protocol version this client speaks. */
export declare const PROTOCOL_VERSION: 1;

/** Code points of a string, as the gateway counts characters. */
export declare function codePointLength(text: string): number;

/** Whether this browser decodes Opus with WebCodecs (it needs a secure context). */
export declare function webCodecsOpusSupported(): Promise<boolean>;

export interface ClientOptions {
  /** `ws(s)://host:port/v1/stream`; default: `/v1/stream` on the page's host. */
  url: string;
  /** Passed to `new WebSocket(url, protocols)`. */
  protocols?: string | string[];
  /**
   * A token from the gateway's `POST /v1/tokens` (or an API key), sent as the subprotocols
   * `tts-gateway` and `bearer.<token>`; a function is called for each session opened (tokens
   * expire: fetch a fresh one from your backend).
   */
  token?: string | (() => string | Promise<string>);
  backend?: string;
  voice?: string;
  lang?: string;
  /** 0.5 to 2.0. */
  speed?: number;
  format?: "opus" | "pcm16";
  /** Opus bit rate, 6000 to 256000 bit/s. */
  bitrate?: number;
  frameMs?: 10 | 20 | 40 | 60;
  shortFirstSegment?: boolean;
  /** The session's pronunciation lexicon (docs/protocol.md, `start.lexicon`). */
  lexicon?: Array<{
    word?: string;
    pattern?: string;
    say?: string;
    ipa?: string;
    espeak?: string;
    case?: "auto" | "exact" | "ignore";
  }>;
  /** Read the text as SSML (docs/protocol.md, `start.ssml`). */
  ssml?: boolean;
  /** `auto` (default): WebCodecs, else WebAssembly. */
  decoder: "auto" | "webcodecs" | "wasm";
  /**
   * `auto` (default): the AudioWorklet player where the page has AudioWorklet (a secure
   * context), else scheduled AudioBufferSourceNodes on the main thread.
   */
  player: "auto" | "worklet" | "scheduled";
  /** Audio the player holds before it starts or resumes playing (default 60 ms). */
  jitterMs: number;
  /** An AudioContext at 48000 Hz to play into; default: the client makes its own. */
  audioContext?: AudioContext;
  /** How long opening a session may take (default 10000 ms). */
  connectTimeoutMs: number;
  /**
   * Retries when opening a session fails in a retryable way, and when opening the new session
   * of a resume (see the README).
   */
  reconnect: { attempts: number; delayMs: number; maxDelayMs: number };
  /**
   * Resume a session whose socket drops mid-turn (a replica killed, a network cut) on a new
   * gateway session, through `url` (a balancer) or `resumeUrls` first, sent the text not
   * reported spoken (docs/protocol.md section 15). Default `false`: a lost session is reported.
   */
  resume: boolean;
  /** Gateway URLs tried before `url` when resuming (default none). */
  resumeUrls: string[];
}

export interface Ready {
  type: "ready";
  protocol: number;
  session: string;
  backend: string;
  voice: string;
  lang: string;
  speed: number;
  format: "opus" | "pcm16";
  sample_rate: number;
  channels: number;
  frame_samples: number;
  bitrate: number | null;
  preskip: number;
  max_message_bytes: number;
  max_pending_chars: number;
}

/** A word of a `words` message, with the message's `segment` and `estimated`. */
export interface Word {
  text: string;
  char_start: number;
  char_end: number;
  sample_start: number;
  sample_end: number;
  /** How the word is read, where that differs from `text`. */
  spoken?: string;
  segment: number;
  estimated: boolean;
}

export interface WordsMessage {
  type: "words";
  segment: number;
  estimated: boolean;
  words: Omit<Word, "segment" | "estimated">[];
}

export interface Progress {
  type: "progress";
  event: "synthesis_started" | "first_audio" | "segment_done" | "tick" | string;
  segment: number | null;
  chars_received: number;
  chars_spoken: number;
  audio_sent_ms: number;
  audio_buffered_ms: number;
  underruns: number;
  time_to_first_audio_ms: number | null;
  real_time_factor: number | null;
}

export interface Flushed {
  type: "flushed";
  id: number | string | null;
  sample_end: number;
  cancelled: boolean;
}

export interface Cancelled {
  type: "cancelled";
  id: number | string | null;
  sample_end: number;
  unspoken_start: number;
  unspoken_end: number;
  unspoken_text: string;
  /** The playback position the client reported. */
  position: number;
  /** Everything of the heard turn before this code point was heard. */
  cut: number;
  heard_start: number;
  heard_text: string;
  unheard_text: string;
}

export interface Done {
  type: "done";
  metrics: {
    chars_received: number;
    chars_spoken: number;
    chars_unspoken: number;
    segments: number;
    segments_failed: number;
    audio_ms: number;
    frames: number;
    bytes: number;
    time_to_first_audio_ms: number | null;
    synthesis_ms: number;
    real_time_factor: number | null;
    session_ms: number;
    underruns: number;
    [key: string]: unknown;
  };
  cut: number;
  heard_start: number;
  heard_text: string;
}

export interface SpeakOptions {
  /** `false`: send the text only, resolve once it is sent (default `true`). */
  flush?: boolean;
  /** Called when the request's text starts to be sent (after the requests before it). */
  onStart?: (start: { charStart: number; session: string }) => void;
}

export interface SpeakResult {
  /** True if a cancel interrupted it (part of it may have been heard: see `cancel()`). */
  cancelled: boolean;
  /** The gateway's answer to the flush sent after the text (null if none was sent). */
  flushed: Flushed | null;
  /**
   * The request's text in the session (code points, `[charStart, charEnd)`; a separating space
   * before it not included). Null if a cancel came before any of it was sent.
   */
  charStart: number | null;
  charEnd: number | null;
  /** Timeline position where its audio starts (its first segment), or null if none came. */
  sampleStart: number | null;
}

/** An `audio` message as received, before decoding. */
export interface AudioFrame {
  /** The gateway's session id (`ready.session`). */
  session: string;
  seq: number;
  sample_start: number;
  /** One Opus packet, or `frame_samples` PCM16 samples. */
  data: Uint8Array;
}

export interface ClientStats {
  /** The gateway's session id. */
  session: string | null;
  decoder: "webcodecs" | "wasm" | "pcm16" | null;
  player: "worklet" | "scheduled" | null;
  framesReceived: number;
  bytesReceived: number;
  /** 48 kHz samples decoded, dropped ones included. */
  samplesDecoded: number;
  /** 48 kHz samples decoded but not played because a cancel dropped them. */
  samplesDropped: number;
  /** Playback position (24 kHz samples on the session timeline). */
  position: number;
  playing: boolean;
  /** Audio queued in the player. */
  bufferedMs: number;
  /** Audio received and not played yet (player queue plus decoder). */
  aheadMs: number;
  /** The gateway's estimate of the same, from its last `progress`. */
  gatewayBufferedMs: number | null;
  /** From the moment a request starts sending its text (session open) to its first audio received... */
  timeToFirstAudioMs: number | null;
  /** ...and played. */
  timeToFirstSoundMs: number | null;
  /** Times playback ran dry while a segment was still being synthesized. */
  underruns: number;
  /** Code points sent in the session. */
  charsSent: number;
  /** Times the session went on on a new gateway session after its socket dropped. */
  resumes: number;
}

export type ErrorCode =
  | "invalid_message"
  | "unknown_type"
  | "invalid_field"
  | "not_started"
  | "already_started"
  | "ended"
  | "unknown_backend"
  | "unknown_voice"
  | "unsupported_language"
  | "pending_text_limit"
  | "backend_unavailable"
  | "backend_error"
  | "internal_error"
  | "connect_failed"
  | "timeout"
  | "connection_closed"
  | "resume_failed"
  | "protocol_error"
  | "audio";

export declare class GatewayError extends Error {
  constructor(
    code: string,
    message: string,
    details?: {
      fatal?: boolean;
      ref?: string | null;
      closeCode?: number | null;
      charStart?: number | null;
      charEnd?: number | null;
    },
  );
  readonly code: ErrorCode | string;
  readonly fatal: boolean;
  /** The client message type that caused it, when the gateway says. */
  readonly ref: string | null;
  /** The WebSocket close code, for a lost connection. */
  readonly closeCode: number | null;
  /** For `backend_error`: the failed segment's characters. */
  readonly charStart: number | null;
  readonly charEnd: number | null;
  /** Whether opening a session again may succeed. */
  readonly retryable: boolean;
}

export interface TtsGatewayEventMap {
  word: CustomEvent<Word>;
  progress: CustomEvent<{ progress: Progress; stats: ClientStats }>;
  error: CustomEvent<GatewayError>;
  done: CustomEvent<Done>;
  ready: CustomEvent<Ready>;
  cancelled: CustomEvent<Cancelled>;
  audio: CustomEvent<AudioFrame>;
  resumed: CustomEvent<Resumed>;
}

/** The session's socket dropped mid-turn and it goes on on a new gateway session. */
export interface Resumed {
  /** The new gateway session's `ready` (the client's `ready` stays the first session's). */
  ready: Ready;
  /** Resumes of this session so far (`stats.resumes`). */
  resumes: number;
  /** Where the resent text starts (code points): the text before it was reported spoken. */
  chars: number;
  /** Where the new session's audio starts on the timeline (the end of the audio received). */
  samples: number;
  /** Why, in words: the close code, or the gateway's error code. */
  reason: string;
}

/** Keeps a session's words by `char_start` and tells which ones playback has reached. */
export declare class WordTimeline {
  add(message: WordsMessage): void;
  words(): Word[];
  advance(position: number): Word[];
  current(position: number): Word | null;
  readonly lastReached: Word | null;
  dropUnreached(): void;
}

export declare class TtsGatewayClient extends EventTarget {
  constructor(options?: Partial<ClientOptions>);
  readonly options: ClientOptions;
  /** The latest session's `ready`, or null. */
  readonly ready: Ready | null;
  /** `closed` also at once after `close()`. */
  readonly state: "idle" | "connecting" | "open" | "ending" | "closed";
  /** Playback position on the latest session's timeline (24 kHz samples), or null. */
  readonly position: number | null;
  /** The word sounding now, or null. */
  readonly currentWord: Word | null;
  /** The latest session's words so far, in text order. */
  readonly words: Word[];
  readonly stats: ClientStats;
  /** The latest session's text between two code point offsets. */
  textSlice(start: number, end?: number): string;

  connect(): Promise<Ready>;
  speak(text: string, options?: SpeakOptions): Promise<SpeakResult>;
  stream(source: AsyncIterable<string> | Iterable<string>, options?: SpeakOptions): Promise<SpeakResult>;
  flush(): Promise<Flushed | null>;
  cancel(): Promise<Cancelled | null>;
  end(): Promise<Done | null>;
  close(): Promise<void>;

  addEventListener<K extends keyof TtsGatewayEventMap>(
    type: K,
    listener: (event: TtsGatewayEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof TtsGatewayEventMap>(
    type: K,
    listener: (event: TtsGatewayEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** What a new session is sent to resume a dropped one, and where its offsets start. */
export interface ResumePlan {
  chars: number;
  samples: number;
  seq: number;
  segment: number;
  messages: Array<
    | { type: "text"; text: string }
    | { type: "flush"; id?: number | string | null }
    | { type: "cancel"; id?: number | string | null }
    | { type: "end" }
  >;
}

export function resumePlan(record: {
  codePoints: string[];
  settledChars: number;
  receivedEnd: number;
  nextSeq: number;
  nextSegment: number;
  ended: boolean;
  /** Flushes and cancels not answered yet, in the order sent, with the code points sent before each. */
  pending?: Array<{ offset: number; message: { type: "flush" | "cancel"; id?: number | string | null } }>;
}): ResumePlan;

export function shiftResumed<M extends { type: string }>(message: M, plan: ResumePlan): M;
