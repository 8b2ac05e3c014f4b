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

/** A line fitLine fills in: `count` readings, their mean time `t` and value `v`, `slope` (value per
 *  unit of time) and the `oldest` time among them. */
export function newLine() {
  return { count: 0, t: 0, v: 0, slope: 0, oldest: 0 };
}

/**
 * The least-squares line through the first `n` readings (`t[j]`, `v[j]`) taken less than `span`
 * before `now`, written into `line` (newLine) and returned: allocates nothing, as it runs every
 * animation frame. Used by the playhead's clock here and by a synchronized follower's drift.
 */
export function fitLine(t, v, n, now, span, line) {
  let k = 0, mt = 0, mv = 0, oldest = now;
  for (let j = 0; j < n; j++) {
    if (now - t[j] >= span) continue;
    k++; mt += t[j]; mv += v[j]; oldest = Math.min(oldest, t[j]);
  }
  line.count = k;
  line.oldest = oldest;
  if (k === 0) { line.slope = 0; return line; }
  mt /= k;
  mv /= k;
  let stt = 0, stv = 0;
  for (let j = 0; j < n; j++) {
    if (now - t[j] >= span) continue;
    stt += (t[j] - mt) ** 2;
    stv += (t[j] - mt) * (v[j] - mv);
  }
  line.t = mt;
  line.v = mv;
  line.slope = stt > 0 ? stv / stt : 0;
  return line;
}

export class PlayheadFit {
  /** `rate`: samples per second of the playhead. */
  constructor(rate) {
    this.rate = rate;
    this.t = new Float64Array(FIT_SIZE);
    this.p = new Float64Array(FIT_SIZE);
    this.n = 0;
    this.i = 0;
    this.lastRaw = null;
    this.line = newLine();
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
    const line = fitLine(this.t, this.p, this.n, nowMs, FIT_SPAN_MS, this.line);
    if (line.count < FIT_MIN) return latest;
    const predicted = line.v + line.slope * (nowMs - line.t);
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
