// Resampler quality, ours (polyphase windowed-sinc) against linear interpolation, on the very
// module the AudioWorklet loads. Prints JSON.   node bench/resampler.mjs
import { LinearResampler, PolyphaseResampler } from "../src/opticlink/web/resampler.js";
import { sweep } from "../tests/js/measure.mjs";

const cases = [[8000, 48000], [8000, 44100], [16000, 48000]];
const results = cases.map(([inRate, outRate]) => {
  const maxHz = 0.425 * inRate;
  const ours = sweep(PolyphaseResampler, inRate, outRate, maxHz, inRate / 80);
  const linear = sweep(LinearResampler, inRate, outRate, maxHz, inRate / 80);
  const round = (r) => ({ minRejectionDb: +r.minRejectionDb.toFixed(1), passbandRippleDb: +r.passbandRippleDb.toFixed(4),
                          delayMs: +r.delayMs.toFixed(3), worstToneHz: r.worstTone });
  return { inRate, outRate, tonesUpToHz: maxHz, ours: round(ours), linear: round(linear) };
});
console.log(JSON.stringify({ benchmark: "resampler", targets: { minRejectionDb: 90, passbandRippleDb: 0.1, delayMs: 3 },
                             results }, null, 2));
