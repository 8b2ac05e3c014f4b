// A single-producer single-consumer ring of float32 samples between the Worker (writer) and the
// AudioWorklet (reader), over a SharedArrayBuffer when the page is cross-origin isolated (else a
// plain ArrayBuffer the worklet fills from messages). Indices are absolute sample counts held in
// Int32 (wrapping), advanced with Atomics; neither side ever waits or allocates.

export const CONTROL = {
  WRITE: 0, // samples written, ever
  READ: 1, // samples read, ever
  UNDERRUNS: 2, // times the reader ran dry while playing
  FORMAT: 3, // 0 float PCM, 1 µ-law codes, 2 A-law codes
  RATE: 4, // source sample rate
  STATE: 5, // 0 buffering, 1 playing
  TRIM_PPM: 6, // the writer's rate trim: the reader consumes (1 + trim) times faster
  OUTPUT_RATE: 7, // the context's rate, set by the reader
  QUANTA: 8, // render quanta processed
  SKIP: 9, // samples the writer asks the reader to skip (a hard re-sync)
  START_AT: 10, // samples buffered before playing starts (or restarts after an underrun)
  GENERATION: 11, // bumped by the writer when the stream restarts (the reader resets its filter)
  STARVED: 12, // samples of silence played for lack of input
  PLAYHEAD: 13, // source sample (absolute) at the end of the last quantum, after the filter's delay
  UNDERRUN_AT: 14, // render quantum (this.quanta) of the last underrun
  SIZE: 16,
};
export const FORMATS = { float: 0, pcmu: 1, pcma: 2 };

export class SampleRing {
  /** `capacity` must be a power of two. */
  constructor(capacity, shared = typeof SharedArrayBuffer !== "undefined" && globalThis.crossOriginIsolated) {
    const Buffer = shared ? SharedArrayBuffer : ArrayBuffer;
    this.shared = shared;
    this.dataBuffer = new Buffer(capacity * 4);
    this.controlBuffer = new Buffer(CONTROL.SIZE * 4);
    this.attach(this.dataBuffer, this.controlBuffer);
  }

  static from(dataBuffer, controlBuffer) {
    const ring = Object.create(SampleRing.prototype);
    ring.shared = typeof SharedArrayBuffer !== "undefined" && dataBuffer instanceof SharedArrayBuffer;
    ring.attach(dataBuffer, controlBuffer);
    return ring;
  }

  attach(dataBuffer, controlBuffer) {
    this.dataBuffer = dataBuffer;
    this.controlBuffer = controlBuffer;
    this.data = new Float32Array(dataBuffer);
    this.control = new Int32Array(controlBuffer);
    this.capacity = this.data.length;
    this.mask = this.capacity - 1;
  }

  get(field) { return Atomics.load(this.control, field); }
  set(field, value) { Atomics.store(this.control, field, value | 0); }
  add(field, value) { return Atomics.add(this.control, field, value | 0); }

  /** Samples waiting to be read. */
  available() {
    return (Atomics.load(this.control, CONTROL.WRITE) - Atomics.load(this.control, CONTROL.READ)) | 0;
  }

  /** Room for the writer. */
  space() { return this.capacity - this.available(); }

  /** Writer: append samples (as many as fit); returns how many were written. */
  write(samples, start = 0, count = samples.length - start) {
    const n = Math.min(count, this.space());
    const w = Atomics.load(this.control, CONTROL.WRITE);
    for (let i = 0; i < n; i++) this.data[(w + i) & this.mask] = samples[start + i];
    Atomics.store(this.control, CONTROL.WRITE, (w + n) | 0);
    return n;
  }

  /** Writer: append `count` samples of silence (lost audio keeps its place in time). */
  writeSilence(count, value = 0) {
    const n = Math.min(count, this.space());
    const w = Atomics.load(this.control, CONTROL.WRITE);
    for (let i = 0; i < n; i++) this.data[(w + i) & this.mask] = value;
    Atomics.store(this.control, CONTROL.WRITE, (w + n) | 0);
    return n;
  }

  /** Reader: copy up to `count` samples into `out` from `start`; returns how many. */
  read(out, start, count) {
    const n = Math.min(count, this.available());
    const r = Atomics.load(this.control, CONTROL.READ);
    for (let i = 0; i < n; i++) out[start + i] = this.data[(r + i) & this.mask];
    Atomics.store(this.control, CONTROL.READ, (r + n) | 0);
    return n;
  }

  /** Reader: discard up to `count` samples. */
  skip(count) {
    const n = Math.min(count, this.available());
    Atomics.add(this.control, CONTROL.READ, n);
    return n;
  }
}
