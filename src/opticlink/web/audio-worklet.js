// The player's audio thread: ring buffer in, G.711 decoding, band-limited resampling, speaker out.
//
// The Worker writes a camera's samples (or G.711 codes) into a ring; this processor reads them,
// decodes G.711 with a table, resamples to the context rate with the polyphase filter, and
// publishes where it is (the playhead), which is the master clock the video follows. A busy
// main thread cannot starve it: nothing here waits on the page. process() allocates nothing and
// posts nothing per quantum (the MessagePort fallback reports every 8 quanta).
import { ALAW, ULAW } from "./g711.js";
import { PolyphaseResampler } from "./resampler.js";
import { CONTROL, FORMATS, SampleRing } from "./ring.js";

const RING_CAPACITY = 1 << 16;
const SCRATCH = 4096;
const FADE_SECONDS = 0.005; // a skip (hard re-sync) crossfades this long, so it does not click

class OpticlinkAudioProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { data, control } = options.processorOptions || {};
    if (data && control) {
      this.ring = SampleRing.from(data, control);
    } else {
      // not cross-origin isolated: the Worker sends samples through a MessagePort
      this.ring = new SampleRing(RING_CAPACITY, false);
      this.port.onmessage = (event) => this.onControl(event.data);
    }
    this.ring.set(CONTROL.OUTPUT_RATE, sampleRate);
    this.scratch = new Float32Array(SCRATCH);
    this.fadeFrom = new Float32Array(1024);
    this.fadeTo = new Float32Array(1024);
    this.resampler = null;
    this.rate = 0;
    this.generation = -1;
    this.playing = false;
    this.fadeIn = false;
    this.quanta = 0;
    this.channel = null; // fallback MessagePort to the Worker
  }

  onControl(message) {
    if (message.type === "port") {
      this.channel = message.port;
      this.channel.onmessage = (event) => this.onControl(event.data);
    } else if (message.type === "samples") {
      this.ring.write(message.samples);
    } else if (message.type === "silence") {
      this.ring.writeSilence(message.count, message.value);
    } else if (message.type === "control") {
      if (message.field === CONTROL.SKIP) this.ring.add(CONTROL.SKIP, message.value);
      else this.ring.set(message.field, message.value);
    }
  }

  process(inputs, outputs) {
    const output = outputs[0];
    const out = output[0];
    const ring = this.ring;
    const generation = ring.get(CONTROL.GENERATION);
    if (generation !== this.generation) {
      this.generation = generation;
      this.rate = ring.get(CONTROL.RATE);
      this.resampler = this.rate > 0 ? new PolyphaseResampler(this.rate, sampleRate) : null;
      this.playing = false;
    }
    this.quanta++;
    ring.add(CONTROL.QUANTA, 1);
    if (this.resampler === null) return this.silence(output);
    const skip = ring.get(CONTROL.SKIP);
    if (skip > 0) {
      ring.add(CONTROL.SKIP, -skip);
      if (this.playing) this.skipFaded(skip);
      else ring.skip(skip);
    }
    if (!this.playing) {
      if (ring.available() < Math.max(1, ring.get(CONTROL.START_AT))) return this.silence(output);
      this.playing = true;
      this.fadeIn = true;
      ring.set(CONTROL.STATE, 1);
    }
    const step = (this.rate / sampleRate) * (1 + ring.get(CONTROL.TRIM_PPM) * 1e-6);
    const resampler = this.resampler;
    const need = Math.min(resampler.needed(out.length, step), SCRATCH);
    const got = ring.read(this.scratch, 0, need);
    this.decode(this.scratch, got);
    resampler.push(this.scratch, 0, got);
    const written = resampler.process(out, out.length, step);
    const ramp = Math.round(sampleRate * FADE_SECONDS);
    if (this.fadeIn) { // sound starts or resumes from silence: fade in, no click
      this.fadeIn = false;
      for (let i = 0, n = Math.min(ramp, written); i < n; i++) out[i] *= Math.sin(((i + 0.5) / n) * (Math.PI / 2));
    }
    if (written < out.length) {
      // ran dry: fade what there was out, count it, play silence, and buffer up to the target again
      // before resuming (faded in): a crossfade through silence, never a click
      const n = Math.min(ramp, written);
      for (let i = 0; i < n; i++) out[written - n + i] *= Math.cos(((i + 0.5) / n) * (Math.PI / 2));
      out.fill(0, written);
      ring.add(CONTROL.UNDERRUNS, 1);
      ring.set(CONTROL.UNDERRUN_AT, this.quanta);
      ring.add(CONTROL.STARVED, out.length - written);
      this.playing = false;
      ring.set(CONTROL.STATE, 0);
    }
    // the source sample now leaving the filter: read position minus what the filter still holds
    const playhead = ring.get(CONTROL.READ) - resampler.length + resampler.position + resampler.taps / 2 - 0.5;
    ring.set(CONTROL.PLAYHEAD, Math.round(playhead));
    for (let c = 1; c < output.length; c++) output[c].set(out);
    if (this.channel !== null && (this.quanta & 7) === 0) {
      this.channel.postMessage({ type: "state", control: this.ring.control.slice(0, CONTROL.SIZE) });
    }
    return true;
  }

  /** G.711 codes to samples, in place (float input is left as it is). */
  decode(samples, count) {
    const format = this.ring.get(CONTROL.FORMAT);
    if (format === FORMATS.float) return;
    const table = format === FORMATS.pcma ? ALAW : ULAW;
    for (let i = 0; i < count; i++) samples[i] = table[samples[i] & 0xff];
  }

  /**
   * Drop `count` samples, crossfading from the sound before the cut into the sound after it (equal
   * power, `FADE_SECONDS`): the stream loses exactly `count` samples and the ear hears no click.
   */
  skipFaded(count) {
    const ring = this.ring;
    const fade = Math.min(this.fadeFrom.length, Math.round(this.rate * FADE_SECONDS));
    if (ring.available() < count + fade || count < fade) {
      ring.skip(count);
      return;
    }
    const from = this.fadeFrom, to = this.fadeTo;
    ring.read(from, 0, fade);
    ring.skip(count - fade);
    ring.read(to, 0, fade);
    this.decode(from, fade);
    this.decode(to, fade);
    for (let i = 0; i < fade; i++) {
      const w = ((i + 0.5) / fade) * (Math.PI / 2);
      from[i] = from[i] * Math.cos(w) + to[i] * Math.sin(w);
    }
    this.resampler.push(from, 0, fade);
  }

  silence(output) {
    for (const channel of output) channel.fill(0);
    return true;
  }
}

registerProcessor("opticlink-audio", OpticlinkAudioProcessor);
