// The playout worklet (audio-worklet.js) in node, its AudioWorklet globals stood in for: an underrun
// is a fade to silence and a fade back, never a click; a skip is crossfaded.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CONTROL, FORMATS, SampleRing } from "../../src/opticlink/web/ring.js";

let Processor = null;
globalThis.sampleRate = 48000;
globalThis.AudioWorkletProcessor = class { constructor() { this.port = { onmessage: null, postMessage() {} }; } };
globalThis.registerProcessor = (_, cls) => { Processor = cls; };
await import("../../src/opticlink/web/audio-worklet.js");

function worklet() {
  const ring = new SampleRing(1 << 16, false);
  const node = new Processor({ processorOptions: { data: ring.dataBuffer, control: ring.controlBuffer } });
  ring.set(CONTROL.FORMAT, FORMATS.float);
  ring.set(CONTROL.RATE, 48000);
  ring.set(CONTROL.START_AT, 960);
  ring.set(CONTROL.GENERATION, 1);
  return { ring, node };
}

/** A 440 Hz tone from sample `from`, `count` samples: loud, so that a cut would be a click. */
function tone(from, count) {
  return Float32Array.from({ length: count }, (_, i) => 0.8 * Math.sin((2 * Math.PI * 440 * (from + i)) / 48000));
}

function render(node, quanta) {
  const out = [];
  for (let q = 0; q < quanta; q++) {
    const channel = new Float32Array(128);
    node.process([], [[channel]]);
    out.push(...channel);
  }
  return Float32Array.from(out);
}

/** The largest step between consecutive samples: a 440 Hz tone at 0.8 steps at most 0.046. */
const largestStep = (x) => x.slice(1).reduce((worst, v, i) => Math.max(worst, Math.abs(v - x[i])), 0);

test("sound that runs dry fades out, and fades in when it resumes: no click", () => {
  const { ring, node } = worklet();
  ring.write(tone(0, 4800)); // 100 ms, then nothing
  const out = [...render(node, 60)];
  assert.equal(ring.get(CONTROL.UNDERRUNS), 1);
  ring.write(tone(4800, 4800));
  out.push(...render(node, 20));
  const played = Float32Array.from(out);
  assert.ok(played.some((v) => Math.abs(v) > 0.7), "the tone plays");
  assert.ok(largestStep(played) < 0.06, `largest step ${largestStep(played).toFixed(3)}`);
});

test("a skip of 100 ms while playing is crossfaded", () => {
  const { ring, node } = worklet();
  ring.write(tone(0, 48000));
  render(node, 20);
  ring.set(CONTROL.SKIP, 4801); // not a whole number of the tone's periods: a cut would click
  const played = render(node, 20);
  assert.equal(ring.get(CONTROL.UNDERRUNS), 0);
  assert.ok(largestStep(played) < 0.1, `largest step ${largestStep(played).toFixed(3)}`);
});
