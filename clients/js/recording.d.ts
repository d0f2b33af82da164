/**
 * Types of recording.js: a session's audio frames kept as they arrive, written as Ogg Opus (the
 * packets as sent) or WAV (16-bit PCM, 24 kHz).
 */
import type { Ready, TtsGatewayClient } from "./tts-gateway";

/** Keeps the frames of the client's latest session (create it before the session opens). */
export declare class SessionRecorder {
  constructor(client: TtsGatewayClient, options?: { maxSeconds?: number });
  /** The `ready` message of the session recorded, or null before one opened. */
  readonly ready: Ready | null;
  /** Stop recording; the frames kept so far stay available to `clip`. */
  detach(): void;
  /** The timeline range `[sampleStart, sampleEnd)` (24 kHz), as far as received; else null. */
  clip(sampleStart: number, sampleEnd: number): Recording | null;
}

export declare class Recording {
  readonly ready: Ready;
  readonly sampleStart: number;
  readonly sampleEnd: number;
  readonly format: "opus" | "pcm16";
  readonly durationS: number;
  /** Ogg Opus, trimmed to the range; null for a `pcm16` session. */
  ogg(): Blob | null;
  /** The samples at 24 kHz, mono (Opus decoded by the browser). */
  samples(): Promise<Float32Array>;
  /** WAV: 16-bit PCM, mono, 24 kHz. */
  wav(): Promise<Blob>;
}

/** A WAV file (16-bit PCM, mono) of float samples in [-1, 1]. */
export declare function wav(samples: Float32Array, sampleRate: number): Uint8Array;

/** An Ogg Opus stream (RFC 7845) of mono Opus packets. */
export declare function oggOpus(
  packets: Uint8Array[],
  options: {
    packetSamples: number;
    preSkip?: number;
    finalGranule?: number;
    inputRate?: number;
    serial?: number;
    vendor?: string;
  },
): Uint8Array;
