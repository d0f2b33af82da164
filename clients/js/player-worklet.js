/**
 * The AudioWorklet processor of the player: a queue of decoded audio with a small jitter buffer,
 * played in order, and the playback clock reported back to the page.
 *
 * Messages from the page (node.port):
 *   {type: "audio", session, pos, data}  48 kHz mono samples; `pos` is the 48 kHz timeline
 *                                        position of data[0] in session `session`
 *   {type: "mark", id}                   answered {type: "mark", id, dropped: false} once every
 *                                        sample queued before it has been played
 *   {type: "clear", id}                  stop now (a 4 ms fade), drop the queue; answered
 *                                        {type: "cleared", id, session, pos, marks}
 * Messages to the page:
 *   {type: "clock", session, pos, buffered, playing, frame, dry}
 *     `pos`: position just after the last sample played (48 kHz, on `session`'s timeline);
 *     `frame`: the context frame at which that sample is output; `dry`: times the queue ran
 *     out while playing. Sent every `reportSamples` output samples while something changes,
 *     and just before a mark is answered (a resolved mark never sees a stale position).
 */

const FADE_SAMPLES = 192; // 4 ms at 48 kHz: stopping at once without a click

class TtsGatewayPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = options.processorOptions ?? {};
    this.startSamples = settings.startSamples ?? 2880;
    this.reportSamples = settings.reportSamples ?? 1024;
    /** @type {({session: number, pos: number, data: Float32Array, offset: number} | {mark: number})[]} */
    this.queue = [];
    this.head = 0;
    this.buffered = 0;
    this.playing = false;
    this.session = 0;
    this.pos = 0;
    this.lastArrival = 0;
    this.sinceReport = 0;
    this.dry = 0;
    this.changed = true;
    /** @type {Float32Array | null} */
    this.fade = null;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    switch (message.type) {
      case "audio":
        this.queue.push({ session: message.session, pos: message.pos, data: message.data, offset: 0 });
        this.buffered += message.data.length;
        this.lastArrival = currentFrame;
        this.changed = true;
        break;
      case "mark":
        this.queue.push({ mark: message.id });
        break;
      case "clear":
        this.clear(message.id);
        break;
    }
  }

  clear(id) {
    const tail = new Float32Array(FADE_SAMPLES);
    let filled = 0;
    const marks = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const item = this.queue[i];
      if ("mark" in item) {
        marks.push(item.mark);
      } else if (this.playing && filled < FADE_SAMPLES) {
        const take = Math.min(FADE_SAMPLES - filled, item.data.length - item.offset);
        tail.set(item.data.subarray(item.offset, item.offset + take), filled);
        filled += take;
      }
    }
    for (let i = 0; i < filled; i++) tail[i] *= 1 - i / filled;
    this.fade = filled > 0 ? tail.subarray(0, filled) : null;
    this.queue = [];
    this.head = 0;
    this.buffered = 0;
    this.playing = false;
    this.changed = true;
    this.port.postMessage({ type: "cleared", id, session: this.session, pos: this.pos, marks });
  }

  /**
   * Answer the marks at the head of the queue: everything before them has been played. The
   * clock is reported first, so that the page's position covers that audio when a mark resolves.
   * @param {number} frame the context frame at which the next sample would be output
   */
  passMarks(frame) {
    if (this.head >= this.queue.length || !("mark" in this.queue[this.head])) return;
    this.report(frame);
    while (this.head < this.queue.length && "mark" in this.queue[this.head]) {
      this.port.postMessage({ type: "mark", id: this.queue[this.head].mark, dropped: false });
      this.head++;
    }
  }

  process(inputs, outputs) {
    const output = outputs[0];
    const channel = output[0];
    const length = channel.length;
    channel.fill(0);
    let written = 0;
    if (this.fade !== null) {
      const take = Math.min(length, this.fade.length);
      channel.set(this.fade.subarray(0, take));
      this.fade = take < this.fade.length ? this.fade.subarray(take) : null;
      written = take; // the fade-out first, then new audio if any
    }
    this.passMarks(currentFrame + written);
    if (!this.playing && this.buffered > 0) {
      // Start once the jitter buffer holds enough, or when audio stopped coming (a short reply).
      const waited = currentFrame - this.lastArrival;
      if (this.buffered >= this.startSamples || waited >= this.startSamples) {
        this.playing = true;
        this.changed = true;
      }
    }
    if (this.playing) {
      while (written < length) {
        const item = this.queue[this.head];
        if (item === undefined) {
          this.playing = false;
          this.dry++;
          this.changed = true;
          break;
        }
        const take = Math.min(length - written, item.data.length - item.offset);
        channel.set(item.data.subarray(item.offset, item.offset + take), written);
        item.offset += take;
        written += take;
        this.buffered -= take;
        this.session = item.session;
        this.pos = item.pos + item.offset;
        this.sinceReport += take;
        if (item.offset === item.data.length) {
          this.head++;
          this.passMarks(currentFrame + written);
        }
      }
    }
    for (let c = 1; c < output.length; c++) output[c].set(channel);
    if (this.head > 256) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.changed || this.sinceReport >= this.reportSamples) this.report(currentFrame + length);
    return true;
  }

  report(frame) {
    this.port.postMessage({
      type: "clock",
      session: this.session,
      pos: this.pos,
      buffered: this.buffered,
      playing: this.playing,
      frame,
      dry: this.dry,
    });
    this.sinceReport = 0;
    this.changed = false;
  }
}

try {
  registerProcessor("tts-gateway-player", TtsGatewayPlayer);
} catch {
  // Already registered in this context by another client instance: the first one serves both.
}
