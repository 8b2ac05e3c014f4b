// The talk microphone's audio thread: mono, band-limited downsampling to the talk rate, 20 ms
// frames of 16-bit PCM posted to the Worker, which sends them to the camera; the level of each
// frame goes to the page for the meter.
//
// Options: `rate` (8000, or 16000 for cameras that take AAC or L16) and `frameMs` (20). The
// frames go through the MessagePort the page hands over (`{type: "port"}`); each carries the
// context time of its first sample (the filter's delay taken off) and the context time when it
// was complete, so the Worker can date it on the wall clock. Nothing is allocated per quantum
// except the finished frame, which is transferred.
import { PolyphaseResampler } from "./resampler.js";

class OpticlinkCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { rate = 8000, frameMs = 20 } = options.processorOptions || {};
    this.rate = rate;
    this.frameSize = Math.round((rate * frameMs) / 1000);
    this.resampler = new PolyphaseResampler(sampleRate, rate, { maxInput: 1024 });
    this.step = sampleRate / rate;
    this.mono = new Float32Array(128);
    this.out = new Float32Array(256);
    this.frame = new Int16Array(this.frameSize);
    this.filled = 0;
    this.produced = 0; // output samples since the start
    this.start = null; // context time of the first input sample
    this.frames = null; // MessagePort to the Worker
    this.peak = 0;
    this.sum = 0;
    this.port.onmessage = (event) => {
      if (event.data.type === "port") this.frames = event.data.port;
    };
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const length = input[0].length;
    if (this.start === null) this.start = currentTime;
    const mono = this.mono;
    if (input.length === 1) {
      mono.set(input[0]);
    } else {
      mono.fill(0);
      for (const channel of input) for (let i = 0; i < length; i++) mono[i] += channel[i] / input.length;
    }
    const resampler = this.resampler;
    resampler.push(mono, 0, length);
    const written = resampler.process(this.out, this.out.length, this.step);
    for (let i = 0; i < written; i++) {
      const sample = Math.max(-1, Math.min(1, this.out[i]));
      this.frame[this.filled++] = Math.round(sample * 32767);
      this.peak = Math.max(this.peak, Math.abs(sample));
      this.sum += sample * sample;
      if (this.filled === this.frameSize) this.flush(length);
    }
    return true;
  }

  flush(quantum) {
    const firstSample = this.produced;
    this.produced += this.frameSize;
    const captured = this.start + firstSample / this.rate - this.resampler.delaySeconds;
    if (this.frames !== null) {
      const pcm = this.frame.slice();
      this.frames.postMessage({ type: "frame", pcm, rate: this.rate, captured,
                                complete: currentTime + quantum / sampleRate }, [pcm.buffer]);
    }
    const rms = Math.sqrt(this.sum / this.frameSize);
    this.port.postMessage({ type: "level", peak: this.peak, rms });
    this.filled = 0;
    this.peak = 0;
    this.sum = 0;
  }
}

registerProcessor("opticlink-capture", OpticlinkCaptureProcessor);
