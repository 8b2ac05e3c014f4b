// Measuring a resampler with pure tones: fit the tone to the output, and whatever is left over
// (images above the input's Nyquist frequency, filter error) is the residual.

export function runTone(Resampler, inRate, outRate, frequency, seconds = 1.0, amplitude = 0.5) {
  const n = Math.round(inRate * seconds);
  const input = new Float32Array(n);
  for (let i = 0; i < n; i++) input[i] = amplitude * Math.sin((2 * Math.PI * frequency * i) / inRate);
  const resampler = new Resampler(inRate, outRate);
  const step = inRate / outRate;
  const quantum = new Float32Array(128);
  const outputs = [];
  let fed = 0;
  while (fed < n) {
    const need = Math.min(resampler.needed(128, step), n - fed);
    resampler.push(input, fed, need);
    fed += need;
    const written = resampler.process(quantum, 128, step);
    outputs.push(quantum.slice(0, written));
  }
  const out = new Float32Array(outputs.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const chunk of outputs) { out.set(chunk, o); o += chunk.length; }
  return { out, delaySeconds: resampler.delaySeconds, amplitude };
}

/** Least-squares fit of a·sin + b·cos at `frequency` over out[from, to). */
export function fitTone(out, outRate, frequency, from, to) {
  let ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
  for (let i = from; i < to; i++) {
    const w = (2 * Math.PI * frequency * i) / outRate;
    const s = Math.sin(w), c = Math.cos(w), y = out[i];
    ss += s * s; cc += c * c; sc += s * c; ys += y * s; yc += y * c;
  }
  const det = ss * cc - sc * sc;
  const a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  let residual = 0, signal = 0;
  for (let i = from; i < to; i++) {
    const w = (2 * Math.PI * frequency * i) / outRate;
    const fit = a * Math.sin(w) + b * Math.cos(w);
    residual += (out[i] - fit) ** 2;
    signal += fit * fit;
  }
  return { amplitude: Math.hypot(a, b), phase: Math.atan2(b, a), residual, signal };
}

/** Image rejection (dB), passband gain (dB) and measured delay (ms) for one tone. */
export function measureTone(Resampler, inRate, outRate, frequency) {
  const { out, delaySeconds, amplitude } = runTone(Resampler, inRate, outRate, frequency);
  const skip = Math.ceil(0.05 * outRate);
  const fit = fitTone(out, outRate, frequency, skip, out.length - skip);
  return {
    frequency,
    rejectionDb: 10 * Math.log10(fit.signal / fit.residual),
    gainDb: 20 * Math.log10(fit.amplitude / amplitude),
    delayMs: delaySeconds * 1000,
  };
}

export function sweep(Resampler, inRate, outRate, maxHz = 3400, stepHz = 100) {
  const tones = [];
  for (let f = stepHz; f <= maxHz; f += stepHz) tones.push(measureTone(Resampler, inRate, outRate, f));
  const gains = tones.map((t) => t.gainDb);
  return {
    inRate, outRate,
    minRejectionDb: Math.min(...tones.map((t) => t.rejectionDb)),
    passbandRippleDb: Math.max(...gains) - Math.min(...gains),
    delayMs: tones[0].delayMs,
    worstTone: tones.reduce((a, b) => (a.rejectionDb < b.rejectionDb ? a : b)).frequency,
  };
}

/** How far below the input (dB) a tone above the output's Nyquist frequency comes out, downsampling. */
export function aliasRejectionDb(Resampler, inRate, outRate, frequency) {
  const { out, amplitude } = runTone(Resampler, inRate, outRate, frequency, 0.5);
  const skip = Math.ceil(0.05 * outRate);
  let power = 0;
  for (let i = skip; i < out.length - skip; i++) power += out[i] ** 2;
  power /= out.length - 2 * skip;
  return 10 * Math.log10(amplitude ** 2 / 2 / power);
}
