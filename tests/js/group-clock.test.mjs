// Synchronized playback (group-clock.js): the leader's cursor, a follower's wall map and its slewed offset.
import assert from "node:assert/strict";
import { test } from "node:test";

import { cursorAt, DEADBAND_US, Follower, leaderOf, leadFor, MAX_LEAD_S, MAX_OFFSET_US, MAX_TRIM, STALE_MS, STEP_US,
  WallMap }
  from "../../src/opticlink/web/group-clock.js";

const PERIOD = 40_000; // µs, 25 fps
const WALL0 = 1_700_000_000e6; // µs

/** A player's frames: presentation times from `pts0`, recorded from `wall0` at 25 fps. */
function mapOf(pts0, wall0, count = 250) {
  const map = new WallMap();
  for (let i = 0; i < count; i++) map.add(pts0 + i * PERIOD, wall0 + i * PERIOD);
  return map;
}

test("a wall map turns presentation time into recorded wall time and back, between frames too", () => {
  const map = mapOf(5_000_000, WALL0);
  assert.equal(map.wallAt(5_000_000 + 3 * PERIOD, 1), WALL0 + 3 * PERIOD);
  assert.equal(map.wallAt(5_000_000 + 3 * PERIOD + 10_000, 1), WALL0 + 3 * PERIOD + 10_000);
  assert.equal(map.ptsAt(WALL0 + 7 * PERIOD + 5_000, 1), 5_000_000 + 7 * PERIOD + 5_000);
  for (const pts of [5_000_000, 6_234_567, 14_000_000]) assert.equal(map.ptsAt(map.wallAt(pts, 1), 1), pts);
  assert.equal(new WallMap().wallAt(0, 1), null);
});

test("at 2x a presentation second holds two recorded seconds", () => {
  const map = new WallMap();
  for (let i = 0; i < 10; i++) map.add(i * 20_000, WALL0 + i * PERIOD); // 25 fps recorded, shown at 50
  assert.equal(map.wallAt(30_000, 2), WALL0 + 60_000);
  assert.equal(map.ptsAt(WALL0 + 60_000, 2), 30_000);
});

test("frames added in decode order (B-frames) are kept in presentation order; the oldest are forgotten", () => {
  const map = new WallMap();
  for (const i of [0, 3, 1, 2, 6, 4, 5]) map.add(i * PERIOD, WALL0 + i * PERIOD);
  assert.deepEqual(map.pts, [0, 1, 2, 3, 4, 5, 6].map((i) => i * PERIOD));
  const long = mapOf(0, WALL0, 1000);
  assert.equal(long.size, 300);
  assert.equal(long.pts[0], 700 * PERIOD);
});

test("the leader's cursor runs on at its speed, and is not followed when stale or not playing", () => {
  const cursor = { wall: 1000, at: 50_000, speed: 2, playing: true };
  assert.equal(cursorAt(cursor, 50_500), 1001);
  assert.equal(cursorAt(cursor, 50_000 + STALE_MS + 1), null);
  assert.equal(cursorAt({ ...cursor, playing: false }, 50_100), null);
  assert.equal(cursorAt(null, 0), null);
});

test("a follower steps to the leader at once after a seek, then only slews", () => {
  const follower = new Follower();
  assert.equal(follower.update(0, 1_000_000, 800_000), -200_000); // 200 ms behind its own clock: a step
  assert.equal(follower.stepped, 1);
  // 30 ms off afterwards (a frame's phase, a late animation frame): taken up by a rate trim, no step
  let offset = -200_000;
  const target = (t) => 1_000_000 + t * 1000 - 230_000;
  for (let t = 16; t <= 1000; t += 16) {
    const before = offset;
    offset = follower.update(t, 1_000_000 + t * 1000, target(t));
    assert.ok(Math.abs(offset - before) <= MAX_TRIM * 16_000 + 1, `${t}: ${offset - before}`);
  }
  assert.equal(follower.stepped, 1);
  assert.ok(Math.abs(offset + 230_000) < 12_000, offset); // most of it in the first second
  for (let t = 1016; t <= 4000; t += 16) offset = follower.update(t, 1_000_000 + t * 1000, target(t));
  assert.ok(Math.abs(offset + 230_000) <= DEADBAND_US, offset);
});

test("a follower far off (the leader's stream stalled) is stepped, not slewed for seconds", () => {
  const follower = new Follower();
  follower.update(0, 0, 0);
  assert.equal(follower.update(16, 16_000, 16_000 - STEP_US - 100_000), -STEP_US - 100_000);
  assert.equal(follower.stepped, 2);
});

test("a follower never holds more than a second of pictures, nor runs ahead of what has come by more", () => {
  const follower = new Follower(); // the leader 30 s on (a gap in the follower's recording): held at the bound
  assert.equal(follower.update(0, 0, -30_000_000), -MAX_OFFSET_US);
  assert.equal(follower.update(16, 16_000, 40_000_000), MAX_OFFSET_US);
});

test("for ten minutes a follower whose clock runs 300 ppm fast shows the leader's wall time within 2 ms", () => {
  // the leader shows recorded wall W at real time t; the follower's own clock runs 300 ppm fast and
  // its recording was made 17 ms later in phase; it is muted (its video on the wall clock)
  const leaderWall = (t) => WALL0 + 5_000_000 + t * 1000; // µs of recording, t in ms
  const map = new WallMap();
  const follower = new Follower();
  let worst = 0;
  for (let t = 0; t <= 600_000; t += 20) {
    const own = t * 1000 * (1 + 300e-6); // the follower's clock, µs
    const pts = Math.floor(t / 40) * PERIOD; // its frames arrive as the session runs
    map.add(pts + 200_000, WALL0 + 5_017_000 + pts); // with a 200 ms lead, recorded 17 ms later
    if (map.size > 0) {
      const target = map.ptsAt(leaderWall(t), 1);
      const offset = follower.update(t, own, target);
      if (t > 2000) worst = Math.max(worst, Math.abs(map.wallAt(own + offset, 1) - leaderWall(t)));
    }
  }
  assert.ok(worst <= 2_000, `${worst} µs`);
  assert.equal(follower.stepped, 1);
});

test("the leader is the camera acted on while it plays a recording, else the first that plays one", () => {
  const players = [{ id: "a", recording: null }, { id: "b", recording: {} }, { id: "c", recording: {} }];
  assert.equal(leaderOf(players, "c").id, "c");
  assert.equal(leaderOf(players, "a").id, "b");
  assert.equal(leaderOf([{ id: "a", recording: null }], "a"), null);
});

test("a follower ahead of what its stream has brought asks for more lead, up to the server's bound", () => {
  assert.equal(leadFor(0.3, -200_000), null); // behind its own clock: it holds pictures, the lead does
  assert.equal(leadFor(0.3, 10_000), null); // a picture still comes in time
  assert.equal(leadFor(0.3, 170_000), 0.62); // 170 ms short, and a margin
  assert.equal(leadFor(0.3, 900_000), MAX_LEAD_S);
  assert.equal(leadFor(MAX_LEAD_S, 100_000), null);
});

test("a follower keeps up with a leader whose clock runs 5 % slow, its cursor heard ten times a second", () => {
  // A loaded machine's audio output skips the callbacks it misses: the leader's clock runs slow. Its
  // cursor reaches the follower every 100 ms, a few ms late, and runs on at speed 1 in between.
  const RATE = 0.95;
  const leaderWall = (t) => WALL0 + 5_000_000 + t * 1000 * RATE; // µs of recording at real time t (ms)
  const map = mapOf(0, WALL0 + 5_000_000, 1000); // the follower's frames, its clock at real time
  const follower = new Follower();
  let cursor = null;
  let worst = 0;
  for (let t = 0; t <= 20_000; t += 16) {
    if (t % 100 < 16) cursor = { wall: leaderWall(t - 7) / 1e6, at: t - 7, speed: 1, playing: true };
    const own = t * 1000;
    const offset = follower.update(t, own, map.ptsAt(cursorAt(cursor, t) * 1e6, 1));
    if (t > 4000) worst = Math.max(worst, Math.abs(map.wallAt(own + offset, 1) - leaderWall(t)));
  }
  // a follower that corrected only the error it saw stayed 50 ms behind (5 % of its 1 s slew time)
  assert.ok(worst <= 8_000, `${worst} µs`);
  assert.ok(Math.abs(follower.rate + 0.05) < 0.005, follower.rate);
  assert.equal(follower.stepped, 1);
});
