// The worklet's resampler, on the module the worklet loads: image rejection, flatness, latency.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LinearResampler, PolyphaseResampler } from "../../src/opticlink/web/resampler.js";
import { aliasRejectionDb, measureTone, sweep } from "./measure.mjs";

for (const [inRate, outRate] of [[8000, 48000], [8000, 44100], [16000, 48000]]) {
  test(`images of tones up to 0.85 Nyquist are at least 90 dB down, ${inRate} -> ${outRate}`, () => {
    const result = sweep(PolyphaseResampler, inRate, outRate, 0.425 * inRate, inRate / 80);
    assert.ok(result.minRejectionDb >= 90, `worst ${result.minRejectionDb.toFixed(1)} dB at ${result.worstTone} Hz`);
    assert.ok(result.passbandRippleDb <= 0.1, `ripple ${result.passbandRippleDb.toFixed(4)} dB`);
    assert.ok(result.delayMs <= 3.0, `delay ${result.delayMs} ms`);
  });
}

test("linear interpolation, the browser's way, leaves loud images: the metallic sound", () => {
  const tone = measureTone(LinearResampler, 8000, 48000, 3000);
  assert.ok(tone.rejectionDb < 30, `linear interpolation rejects only ${tone.rejectionDb.toFixed(1)} dB`);
});

test("a rate trim of 0.5 % consumes input 0.5 % faster", () => {
  const r = new PolyphaseResampler(8000, 48000);
  const step = (8000 / 48000) * 1.005;
  const input = Float32Array.from({ length: 8000 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 1000 * i) / 8000));
  const out = new Float32Array(128);
  let fed = 0, produced = 0;
  while (fed < input.length - 400) {
    const need = r.needed(128, step);
    r.push(input, fed, need);
    fed += need;
    produced += r.process(out, 128, step);
  }
  assert.ok(Math.abs(produced / fed - 6 / 1.005) < 0.01);
});

test("process() never allocates: its buffers are the constructor's", () => {
  const r = new PolyphaseResampler(8000, 48000);
  const { buffer, kernel } = r;
  const input = new Float32Array(4096).fill(0.1);
  const out = new Float32Array(128);
  for (let i = 0; i < 100; i++) {
    r.push(input, 0, r.needed(128, 1 / 6));
    r.process(out, 128, 1 / 6);
  }
  assert.equal(r.buffer, buffer);
  assert.equal(r.kernel, kernel);
});

for (const [inRate, outRate] of [[48000, 8000], [44100, 8000], [48000, 16000]]) {
  test(`the talk microphone, ${inRate} -> ${outRate}: flat to 0.85 Nyquist, aliases 90 dB down`, () => {
    const passband = sweep(PolyphaseResampler, inRate, outRate, 0.425 * outRate, outRate / 40);
    assert.ok(passband.passbandRippleDb <= 0.1, `ripple ${passband.passbandRippleDb.toFixed(4)} dB`);
    assert.ok(passband.minRejectionDb >= 90, `filter error ${passband.minRejectionDb.toFixed(1)} dB`);
    for (let f = 0.575 * outRate; f < inRate / 2; f += 997) {
      const rejection = aliasRejectionDb(PolyphaseResampler, inRate, outRate, f);
      assert.ok(rejection >= 90, `a ${f} Hz tone aliases only ${rejection.toFixed(1)} dB down`);
    }
  });
}
