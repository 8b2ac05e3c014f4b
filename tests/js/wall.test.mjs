// The wall's state machine: layouts and pages, selection by arrows, focus and back, who is heard.
import assert from "node:assert/strict";
import { test } from "node:test";

import { canTalk, hasAudio, initialWall, layoutFor, pageCount, reduce, viewOf } from "../../src/opticlink/web/wall.js";

const ids = (n) => Array.from({ length: n }, (_, i) => `cam${i + 1}`);
const run = (wall, ...actions) => actions.reduce(reduce, wall);

test("the first layout is the smallest that shows every camera, 4x4 at most", () => {
  assert.deepEqual([1, 2, 4, 5, 9, 10, 16, 17, 40].map(layoutFor), [1, 2, 2, 3, 3, 4, 4, 4, 4]);
  assert.equal(layoutFor(0), 1);
});

test("more cameras than tiles make pages, and paging wraps around", () => {
  assert.equal(pageCount(4, 1), 4);
  assert.equal(pageCount(17, 4), 2);
  assert.equal(pageCount(0, 2), 1);
  const wall = initialWall(ids(10), 2);
  assert.deepEqual(viewOf(wall).shown, ["cam1", "cam2", "cam3", "cam4"]);
  const last = run(wall, { type: "page", delta: -1 });
  assert.equal(last.page, 2);
  assert.deepEqual(viewOf(last).shown, ["cam9", "cam10"]);
  assert.equal(last.selected, "cam9"); // the keyboard acts on what is shown
  assert.equal(run(last, { type: "page", delta: 1 }).page, 0);
});

test("a layout change keeps the selected camera on screen", () => {
  const wall = run(initialWall(ids(10), 3), { type: "select", id: "cam7" }, { type: "layout", size: 1 });
  assert.deepEqual(viewOf(wall), { columns: 1, shown: ["cam7"], audible: null });
  assert.equal(run(wall, { type: "layout", size: 2 }).page, 1);
  assert.equal(run(wall, { type: "layout", size: 5 }), wall); // no such layout: nothing changes
});

test("arrows move the selection within the grid, not across its edges", () => {
  const wall = initialWall(ids(9), 3);
  assert.equal(run(wall, { type: "move", dx: 1, dy: 0 }).selected, "cam2");
  assert.equal(run(wall, { type: "move", dx: 0, dy: 1 }).selected, "cam4");
  assert.equal(run(wall, { type: "move", dx: -1, dy: 0 }).selected, "cam1");
  const right = run(wall, { type: "select", id: "cam3" }, { type: "move", dx: 1, dy: 0 });
  assert.equal(right.selected, "cam3");
  assert.equal(run(wall, { type: "select", id: "cam8" }, { type: "move", dx: 0, dy: 1 }).selected, "cam8");
});

test("focus shows one camera alone and heard; Escape returns to its page of the wall", () => {
  const wall = run(initialWall(ids(6), 2), { type: "choose", id: "cam2" }, { type: "select", id: "cam5" },
                   { type: "focus" });
  assert.deepEqual(viewOf(wall), { columns: 1, shown: ["cam5"], audible: "cam5" });
  assert.equal(run(wall, { type: "page", delta: 1 }), wall); // no paging while focused
  const back = run(wall, { type: "unfocus" });
  assert.deepEqual(viewOf(back), { columns: 2, shown: ["cam5", "cam6"], audible: "cam2" }); // the chosen again
  assert.equal(run(back, { type: "unfocus" }), back);
  assert.equal(run(initialWall(ids(4)), { type: "focus", id: "cam9" }).focused, null);
});

test("one camera is heard: the one last clicked; none clicked yet, every camera plays", () => {
  const wall = initialWall(ids(4));
  assert.equal(viewOf(wall).audible, null);
  const chosen = run(wall, { type: "choose", id: "cam2" });
  assert.equal(viewOf(chosen).audible, "cam2");
  assert.equal(viewOf(run(chosen, { type: "choose", id: "cam3" })).audible, "cam3");
  assert.equal(viewOf(run(chosen, { type: "select", id: "cam3" })).audible, "cam2"); // selecting is not hearing
});

test("talk is offered where the camera's status allows it; sound is assumed until the tracks are known", () => {
  assert.equal(canTalk({ talk: { talking: null } }), true);
  assert.equal(canTalk({ talk: null }), false);
  assert.equal(canTalk({ talk: { speaker: false } }), false);
  assert.equal(hasAudio({ tracks: [] }), true);
  assert.equal(hasAudio({ tracks: [{ kind: "video" }] }), false);
  assert.equal(hasAudio({ tracks: [{ kind: "video" }, { kind: "audio", backchannel: false }] }), true);
});

test("a wall of more than four tiles is not a mix of every camera: its first tile is heard until one is chosen", () => {
  const nine = initialWall(ids(9), 3);
  assert.equal(viewOf(nine).audible, "cam1");
  assert.equal(viewOf(run(nine, { type: "choose", id: "cam5" })).audible, "cam5");
  assert.equal(viewOf(initialWall(ids(4), 2)).audible, null, "four tiles are all heard");
});
