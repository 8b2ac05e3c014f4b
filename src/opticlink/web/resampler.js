// Band-limited resampling for the audio worklet: a polyphase windowed-sinc (Kaiser) filter.
//
// Cameras send 8 or 16 kHz; the output runs at 44.1 or 48 kHz. Linear interpolation (what the
// browser does when it plays an 8 kHz AudioBuffer) leaves images of every tone above the input
// Nyquist frequency: the "metallic" sound. This filter is flat to 0.85 of the input Nyquist
// (3.4 kHz for 8 kHz in) and rejects images by at least 90 dB, with 48 taps at the input rate:
// a group delay of 23.5 input samples, 2.94 ms at 8 kHz. It also downsamples (see the
// constructor). The ratio may change at any time (the player's inaudible rate trims); 512 phases
// interpolated linearly give any fractional position.
// Nothing here allocates after construction: process() only reads and writes preallocated arrays.

const TAPS = 48;
const PHASES = 512;

function besselI0(x) {
  let sum = 1, term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

/** The filter table: PHASES + 1 rows of TAPS coefficients, row p for fractional offset p/PHASES. */
export function designKernel({ taps = TAPS, phases = PHASES, beta = 9.5, cutoff = 1.0 } = {}) {
  const table = new Float64Array((phases + 1) * taps);
  const half = taps / 2;
  const i0beta = besselI0(beta);
  for (let p = 0; p <= phases; p++) {
    const mu = p / phases;
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const t = k - (half - 1) - mu; // distance from the output position, in input samples
      const x = Math.PI * cutoff * t;
      const sinc = x === 0 ? 1 : Math.sin(x) / x;
      const r = t / half;
      const window = Math.abs(r) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - r * r)) / i0beta;
      const value = cutoff * sinc * window;
      table[p * taps + k] = value;
      sum += value;
    }
    for (let k = 0; k < taps; k++) table[p * taps + k] /= sum; // exact unity gain at DC
  }
  return table;
}

/** The input side every resampler here shares: pushed samples, and the window the next output reads. */
class InputHistory {
  constructor(taps, maxInput) {
    this.taps = taps;
    this.buffer = new Float32Array(taps + maxInput + 8);
    this.length = taps - 1; // starts with a history of silence
    this.position = 0; // fractional index of the next output's first tap in `buffer`
  }

  /** Input samples still needed to produce `count` outputs at `step` input samples per output. */
  needed(count, step) {
    const last = this.position + (count - 1) * step;
    return Math.max(0, Math.floor(last) + this.taps - this.length);
  }

  /** Append input samples from `source[start, start + count)`. */
  push(source, start, count) {
    this.buffer.set(source.subarray(start, start + count), this.length);
    this.length += count;
  }

  /** After a process() that reached `position`: keep only what later outputs still need. */
  keep(position) {
    const drop = Math.min(Math.floor(position), this.length);
    if (drop > 0) {
      this.buffer.copyWithin(0, drop, this.length);
      this.length -= drop;
      position -= drop;
    }
    this.position = position;
  }
}

export class PolyphaseResampler extends InputHistory {
  /**
   * inRate/outRate in Hz. `maxInput` bounds the samples pushed between two process() calls.
   * Downsampling (the talk microphone, 48 kHz to 8 kHz) scales the filter to the output's Nyquist
   * frequency, with proportionally more taps: the same flatness and rejection, now of aliases.
   */
  constructor(inRate, outRate, { maxInput = 8192 } = {}) {
    const cutoff = Math.min(1, outRate / inRate);
    const taps = 2 * Math.ceil(TAPS / cutoff / 2);
    super(taps, maxInput);
    this.inRate = inRate;
    this.outRate = outRate;
    this.phases = PHASES;
    this.kernel = new Float32Array(designKernel({ taps, cutoff }));
    this.delaySeconds = (taps / 2 - 0.5) / inRate;
  }

  /**
   * Write `count` outputs into `out` at `step` input samples per output (inRate/outRate times the
   * trim). Outputs whose inputs are missing are left at zero; returns how many were written.
   */
  process(out, count, step) {
    const { buffer, kernel, taps, phases } = this;
    let position = this.position;
    let written = 0;
    for (; written < count; written++) {
      const base = Math.floor(position);
      if (base + taps > this.length) break;
      const frac = (position - base) * phases;
      const phase = Math.floor(frac);
      const weight = frac - phase;
      const row0 = phase * taps, row1 = row0 + taps;
      let acc0 = 0, acc1 = 0;
      for (let k = 0; k < taps; k++) {
        const s = buffer[base + k];
        acc0 += s * kernel[row0 + k];
        acc1 += s * kernel[row1 + k];
      }
      out[written] = acc0 + (acc1 - acc0) * weight;
      position += step;
    }
    out.fill(0, written, count);
    this.keep(position);
    return written;
  }
}

/** The baseline: linear interpolation between neighbouring samples (no band limiting). */
export class LinearResampler extends InputHistory {
  constructor(inRate, outRate, { maxInput = 8192 } = {}) {
    super(2, maxInput);
    this.inRate = inRate;
    this.outRate = outRate;
    this.delaySeconds = 0.5 / inRate;
  }

  process(out, count, step) {
    const buffer = this.buffer;
    let position = this.position;
    let written = 0;
    for (; written < count; written++) {
      const base = Math.floor(position);
      if (base + 2 > this.length) break;
      const w = position - base;
      out[written] = buffer[base] * (1 - w) + buffer[base + 1] * w;
      position += step;
    }
    out.fill(0, written, count);
    this.keep(position);
    return written;
  }
}
