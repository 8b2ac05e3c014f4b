// The Worker's clocks (clock.js): the playhead's line through bursty readings, and the display timing.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DisplayTiming, PlayheadFit } from "../../src/opticlink/web/clock.js";

test("a playhead published in bursts reads as a steady clock", () => {
  const fit = new PlayheadFit(8000);
  let worst = 0, worstRaw = 0;
  // the worklet's render quanta come in bursts: what it publishes moves every 16 ms
  for (let ms = 0; ms < 2000; ms += 1) {
    const raw = Math.floor(ms / 16) * 16 * 8;
    const read = fit.at(ms, raw);
    if (ms > 600) {
      worst = Math.max(worst, Math.abs(read - ms * 8) / 8);
      worstRaw = Math.max(worstRaw, Math.abs(raw - ms * 8) / 8);
    }
  }
  assert.ok(worstRaw >= 15, "the readings alone are 15 ms off");
  assert.ok(worst < 1, `the line is within 1 ms of the true clock: ${worst.toFixed(2)} ms`);
});

test("the playhead wraps as the ring's 32-bit counters do", () => {
  const fit = new PlayheadFit(8000);
  const start = 2 ** 31 - 400;
  let last = null;
  for (let ms = 0; ms < 300; ms += 3) {
    const raw = (start + ms * 8) | 0;
    const read = fit.at(ms, raw);
    if (last !== null) assert.ok(((Math.round(read) - Math.round(last)) | 0) >= 0, "never backwards");
    last = read;
  }
  assert.equal((Math.round(last) - ((start + 297 * 8) | 0)) | 0, 0);
});

test("a jump in the playhead (a skip) restarts the line at once", () => {
  const fit = new PlayheadFit(8000);
  for (let ms = 0; ms <= 500; ms += 3) fit.at(ms, ms * 8);
  const jumped = fit.at(503, 503 * 8 + 1600); // 200 ms skipped
  assert.equal(jumped, 503 * 8 + 1600);
});

test("the display interval is the short spacing of animation frames, even when some are skipped", () => {
  const display = new DisplayTiming();
  let t = 0;
  for (let i = 0; i < 64; i++) display.frame((t += i % 5 === 4 ? 33333 : 16667));
  assert.ok(Math.abs(display.interval - 16667) < 1);
  assert.ok(display.held > 16667 && display.held < 33333, `${display.held}`);
});
