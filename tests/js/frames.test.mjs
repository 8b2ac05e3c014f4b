// The frame chooser (frames.js): which decoded picture an animation frame shows.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BEHIND_MS, choose, fallenBehind, framePeriod, leaveUndecoded, STILL_US, WATCHDOG_US } from "../../src/opticlink/web/frames.js";

const pictures = (...ms) => ms.map((t) => ({ timestamp: t * 1000 }));
const HELD = 16667;

test("the latest picture due by the middle of its time on screen is shown; older ones are passed over", () => {
  const frames = pictures(0, 40, 80, 120);
  const { show, passed, late } = choose(frames, 85_000, HELD, 40_000);
  assert.equal(show.timestamp, 80_000);
  assert.deepEqual(passed.map((f) => f.timestamp), [0, 40_000]);
  assert.equal(late, null);
  assert.deepEqual(frames.map((f) => f.timestamp), [120_000]);
});

test("a picture due within half its display time is shown now rather than a display interval late", () => {
  const frames = pictures(100);
  assert.equal(choose(frames, 92_000, HELD, 40_000).show.timestamp, 100_000);
  assert.equal(choose(pictures(100), 90_000, HELD, 40_000).show, null);
});

test("nothing is shown before its time", () => {
  const frames = pictures(200, 240);
  assert.deepEqual(choose(frames, 100_000, HELD, 40_000), { show: null, passed: [], late: null });
  assert.equal(frames.length, 2);
});

test("a picture more than a frame period behind the clock is dropped, not shown", () => {
  const { show, late } = choose(pictures(0), 50_000, HELD, 40_000);
  assert.equal(show, null);
  assert.equal(late.timestamp, 0);
});

test("when every picture comes late, one is shown once the screen has stood still for STILL_US", () => {
  // a follower 86 ms ahead of what its stream brings: each picture is due before it comes
  let shown = 0, dropped = 0, drawnAt = -Infinity;
  for (let now = 0; now < 2_000_000; now += 16_667) {
    const frames = pictures(Math.floor((now - 86_000) / 40_000) * 40);
    const { show, late } = choose(frames, now, HELD, 40_000, now - drawnAt);
    if (show) { shown++; drawnAt = now; }
    if (late) dropped++;
  }
  assert.ok(shown >= 2_000_000 / STILL_US - 1, `${shown} pictures in 2 s`);
  assert.ok(dropped > shown, "the late pictures between are still dropped");
});

test("decoding that fell behind by the watchdog's margin with a backlog is flushed", () => {
  const frames = pictures(0, 40);
  assert.equal(fallenBehind(frames, 40_000 + WATCHDOG_US + 1, 3), true);
  assert.equal(fallenBehind(frames, 40_000 + WATCHDOG_US + 1, 1), false, "no backlog: it catches up");
  assert.equal(fallenBehind(frames, 40_000 + WATCHDOG_US - 1, 3), false);
  assert.equal(fallenBehind([], 1e9, 10), false);
});

test("the frame period comes from the two oldest pictures, within 10-100 ms", () => {
  assert.equal(framePeriod(pictures(0, 40), 1), 40_000);
  assert.equal(framePeriod(pictures(0, 500), 1), 100_000);
  assert.equal(framePeriod(pictures(0), 33_000), 33_000);
});

test("behind, pictures no other is predicted from are left undecoded; keyframes never", () => {
  const base = { key: false, nonReference: true, keyframesOnly: false, decodeQueue: 0, sinceLateMs: Infinity };
  assert.equal(leaveUndecoded(base), false, "in time: everything is decoded");
  assert.equal(leaveUndecoded({ ...base, decodeQueue: 2 }), true, "the decoder has a backlog");
  assert.equal(leaveUndecoded({ ...base, sinceLateMs: BEHIND_MS - 1 }), true, "a picture was late just now");
  assert.equal(leaveUndecoded({ ...base, nonReference: false, decodeQueue: 5 }), false, "others predict from it");
  assert.equal(leaveUndecoded({ ...base, key: true, decodeQueue: 5 }), false);
});

test("a small tile decodes keyframes only", () => {
  const base = { key: false, nonReference: false, keyframesOnly: true, decodeQueue: 0, sinceLateMs: Infinity };
  assert.equal(leaveUndecoded(base), true);
  assert.equal(leaveUndecoded({ ...base, key: true }), false);
});
