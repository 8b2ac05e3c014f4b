// The timeline's time math: walls to pixels and back, spans in view, hover hits, following the cursor.
import assert from "node:assert/strict";
import { test } from "node:test";

import { followView, spanAt, spansInView, ticks, viewOf, wallOfX, xOfWall } from "../../src/opticlink/web/timeline.js";

const view = { start: 1000, end: 1600 }; // ten minutes over 600 px: one second a pixel

test("a wall time and its pixel are each other's inverse, and the pixel is clamped to the view", () => {
  for (const wall of [1000, 1234.5, 1600]) assert.equal(wallOfX(xOfWall(wall, view, 600), view, 600), wall);
  assert.equal(xOfWall(1300, view, 1200), 600);
  assert.equal(wallOfX(-50, view, 600), 1000);
  assert.equal(wallOfX(9999, view, 600), 1600);
});

test("spans are clipped to the view, those outside left out, and a short one stays a pixel wide", () => {
  const spans = [[900, 1100], [1200, 1200.2], [1500, 1700], [1700, 1800]];
  const rects = spansInView(spans, view, 600);
  assert.deepEqual(rects.map((r) => [r.x, r.w]), [[0, 100], [200, 1], [500, 100]]);
  const open = spansInView([{ start: 1550, end: null }], view, 600); // a gap still open: to the view's end
  assert.deepEqual(open.map((r) => [r.x, r.w]), [[550, 50]]);
});

test("hover finds the gap or talk under the pointer, with some slack for thin ones", () => {
  const gaps = [{ start: 1100, end: 1101, cause: "camera offline" }, { start: 1400, end: 1450, cause: "disk full" }];
  assert.equal(spanAt(gaps, 1420).cause, "disk full");
  assert.equal(spanAt(gaps, 1102), null);
  assert.equal(spanAt(gaps, 1102, 2).cause, "camera offline");
});

test("the view follows the cursor when it leaves, and never shows the future", () => {
  assert.deepEqual(followView(view, 1300, 5000), view); // inside: unchanged
  assert.deepEqual(followView(view, 1700, 5000), { start: 1250, end: 1850 }); // cursor at 3/4
  assert.deepEqual(followView(view, 500, 5000), { start: 50, end: 650 });
  assert.deepEqual(followView(view, 1700, 1750), { start: 1150, end: 1750 }); // not past now
  assert.deepEqual(viewOf(600, 1750, 1760), { start: 1160, end: 1760 });
  assert.deepEqual(viewOf(600, 100, 5000), { start: -350, end: 250 });
});

test("ticks fall on round times, about six to a view", () => {
  assert.deepEqual(ticks({ start: 1000, end: 1600 }), [1200, 1500]);
  const hour = ticks({ start: 3600 * 100 + 7, end: 3600 * 101 + 7 });
  assert.ok(hour.length >= 2 && hour.length <= 7 && hour.every((t) => t % 600 === 0), String(hour));
});
