// The clocks the Worker presents video by, sans-IO: fed readings and times, never reading a clock
// (tests/js/clock.test.mjs).
//
// `PlayheadFit`: the worklet publishes its playhead once per render quantum, and under load quanta
// come in bursts. The clock is read from a running least-squares line of playhead against time
// over the last half second (the playhead advances at a steady rate), restarted when the two part
// by more than 20 ms of sound (a skip, an underrun, a new generation).
//
// `DisplayTiming`: a frame drawn in an animation frame reaches the screen one display interval after
// that animation frame began (Chromium's own video path picks its frame for [begin + interval,
// begin + 2 intervals]). The display interval is a low percentile of the spacing of animation
// frames (a busy machine skips some); the time a drawn frame stays up is their mean spacing.

const FIT_SIZE = 64; // readings kept
const FIT_SPAN_MS = 500;
const FIT_MIN = 8; // readings in the span before the line is trusted
const FIT_JUMP_S = 0.02;

export class PlayheadFit {
  /** `rate`: samples per second of the playhead. */
  constructor(rate) {
    this.rate = rate;
    this.t = new Float64Array(FIT_SIZE);
    this.p = new Float64Array(FIT_SIZE);
    this.n = 0;
    this.i = 0;
    this.lastRaw = null;
  }

  /**
   * The playhead at `nowMs`, from the ring's 32-bit playhead `raw` read then. The result counts from
   * the first reading and wraps as the ring's does: compare it with ring positions by `(a - b) | 0`.
   */
  at(nowMs, raw) {
    if (this.lastRaw === null || raw !== this.lastRaw) {
      const unwrapped = this.n ? this.p[(this.i + FIT_SIZE - 1) % FIT_SIZE] + ((raw - this.lastRaw) | 0) : raw;
      this.t[this.i] = nowMs;
      this.p[this.i] = unwrapped;
      this.i = (this.i + 1) % FIT_SIZE;
      this.n = Math.min(FIT_SIZE, this.n + 1);
      this.lastRaw = raw;
    }
    const latest = this.p[(this.i + FIT_SIZE - 1) % FIT_SIZE];
    if (this.n < FIT_MIN) return latest;
    let mt = 0, mp = 0, k = 0;
    for (let j = 0; j < this.n; j++) if (nowMs - this.t[j] < FIT_SPAN_MS) { mt += this.t[j]; mp += this.p[j]; k++; }
    if (k < FIT_MIN) return latest;
    mt /= k;
    mp /= k;
    let stt = 0, stp = 0;
    for (let j = 0; j < this.n; j++) {
      if (nowMs - this.t[j] < FIT_SPAN_MS) { stt += (this.t[j] - mt) ** 2; stp += (this.t[j] - mt) * (this.p[j] - mp); }
    }
    const predicted = mp + (stt > 0 ? stp / stt : 0) * (nowMs - mt);
    if (Math.abs(predicted - latest) > this.rate * FIT_JUMP_S) { // a jump: start again
      this.n = 0;
      return latest;
    }
    return predicted;
  }
}

const SPACINGS = 32;

export class DisplayTiming {
  constructor() {
    this.last = 0;
    this.spacings = new Float64Array(SPACINGS);
    this.sorted = new Float64Array(SPACINGS);
    this.count = 0;
    this.interval = 16667; // µs from an animation frame's start to its picture on screen
    this.held = 16667; // µs a drawn picture stays on screen
  }

  /** An animation frame began at `begin` (µs). */
  frame(begin) {
    if (this.last && begin > this.last) {
      const spacing = Math.min(100000, begin - this.last);
      this.spacings[this.count++ % SPACINGS] = spacing;
      this.held += (spacing - this.held) / SPACINGS;
      if (this.count >= 8) {
        const n = Math.min(this.count, SPACINGS);
        const sorted = this.sorted.subarray(0, n); // no allocation per animation frame
        sorted.set(this.spacings.subarray(0, n));
        sorted.sort();
        this.interval = Math.max(4000, Math.min(50000, sorted[Math.floor(n / 10)]));
      }
    }
    this.last = begin;
  }
}
