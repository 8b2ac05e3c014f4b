// Synchronized playback of several cameras, sans-IO (tests/js/group-clock.test.mjs): one master clock
// for the group, every other player slaved to it by its picture alone, never by a seek.
//
// The master ("leader") is one playing player: the camera the user acts on (its sound is the one
// heard). It plays on its own clock as ever (its audio clock, or the wall clock without sound) and
// tells the page its *cursor*, ten times a second: the recorded wall time its presentation clock
// stands at, and when (`{ wall: Unix s, at: epoch ms, speed, playing }`). The page passes the cursor
// to every other player of the group ("followers"); a follower turns the leader's wall time into its
// own presentation time through the recorded wall times of its own frames (`WallMap`) and moves its
// video clock towards it by an offset (`Follower`): a small rate trim (at most `MAX_TRIM` of real
// time, so the chooser repeats or drops a picture now and then), or a step when far off (the start,
// a seek: a burst of drops or a held picture). A leader whose clock runs at another rate than the
// follower's (on a loaded machine an audio output that misses callbacks skips them: its clock runs
// slow, 2-5 % measured here) would leave a follower that only corrects the error it sees behind by
// that rate times its slew time (50 ms at 5 %): the follower measures how fast the offset it needs
// moves (a line fitted over the last `DRIFT_SPAN_MS`) and moves its offset that fast, correcting
// only what remains. Followers play muted: their sound would run on their
// own audio clock, off their picture by the offset. Pause, seek and speed go to every player
// (timeline.js's SyncGroup), so the clocks start together and the trims only take up what differs:
// each player's buffer depth, when its seek reached the server, the recordings' phases, and the
// cameras' clock drift over minutes.
//
// Units: presentation times (`pts`) µs on the player's playback session clock; wall times µs in
// `WallMap` (as the frame headers carry them), Unix seconds in cursors; `now`/`at` epoch ms.

import { fitLine, newLine } from "./clock.js";

export const MAX_TRIM = 0.1; // the follower's clock runs at most 10 % fast or slow while it slews
export const SLEW_TIME_S = 1.0; // an error is taken up over about this long (then MAX_TRIM caps the rate)
// An error larger than this (three frames at 25 fps) is stepped, not slewed: right after a seek, and
// when the follower's own clock moves (its lead taking effect, a stall of its stream).
export const STEP_US = 120_000;
export const DEADBAND_US = 2_000; // an error below this is left alone (a frame is 33-40 ms)
// The rate of the offset needed is fitted over this long (20 cursors at 10 a second, each read late by
// the page's own scheduling), and used once the fit spans DRIFT_MIN_MS; a step starts it again.
export const DRIFT_SPAN_MS = 2_000;
export const DRIFT_MIN_MS = 1_000;
const DRIFT_READINGS = 256; // bound: animation frames in DRIFT_SPAN_MS at 120 Hz
export const STALE_MS = 2_000; // a leader not heard from for this long is not followed
// A follower holds decoded pictures to run behind its own clock (its lead, below, and the leader's sound
// buffer: 0.3-0.9 s measured), and cannot show what has not come: its offset stays within this.
// Further apart (a gap in one recording and not the other) it plays on at that offset until the group
// is seeked again.
export const MAX_OFFSET_US = 1_500_000;
// A follower cannot show a picture before it comes, and a leader shows its pictures later than a muted
// follower would (its sound's buffer, 250 ms and more) by less than its stream may have started
// earlier: a player asks the server for a recording's frames this long before they are due, and holds
// them. Every playback does, from its start: a camera may lead or follow later, and a change of pace
// mid-stream would run its sound dry (the lead taken away) or over (given).
export const PLAYBACK_LEAD_S = 0.3;
export const MAX_LEAD_S = 1.0; // the server's bound
const LEAD_MARGIN_S = 0.15;
const SHORT_US = 20_000; // ahead of its own clock by less than half a frame: a picture still comes in time

/**
 * A follower whose stream started later than the leader's by more than its lead (a loaded page opens
 * its players one after another) needs pictures before they come: its offset is ahead of its own
 * clock, which runs on what has come. The lead (s) to ask for then (the margin more than it lacks, at
 * most MAX_LEAD_S), or null: the lead it has does. Once the frames come earlier its own clock moves up
 * and the follower steps back (a muted follower's clock runs on what has come).
 */
export function leadFor(lead, offsetUs) {
  if (offsetUs <= SHORT_US || lead >= MAX_LEAD_S) return null;
  return Math.min(MAX_LEAD_S, +(lead + offsetUs / 1e6 + LEAD_MARGIN_S).toFixed(3));
}

const MAX_ANCHORS = 300;

/** The recorded wall times of a player's frames by their presentation times, to map one onto the other. */
export class WallMap {
  constructor() {
    this.pts = [];
    this.wall = [];
  }

  clear() {
    this.pts.length = 0;
    this.wall.length = 0;
  }

  /** A frame presented at `pts` (µs) was recorded at `wall` (µs). Kept sorted by `pts` (B-frames come
   *  in decode order); the oldest are forgotten past MAX_ANCHORS. */
  add(pts, wall) {
    let i = this.pts.length;
    while (i > 0 && this.pts[i - 1] > pts) i--;
    if (i > 0 && this.pts[i - 1] === pts) { this.wall[i - 1] = wall; return; }
    this.pts.splice(i, 0, pts);
    this.wall.splice(i, 0, wall);
    if (this.pts.length > MAX_ANCHORS) { this.pts.shift(); this.wall.shift(); }
  }

  get size() { return this.pts.length; }

  /** The recorded wall time (µs) at presentation time `pts`, from the nearest frame at or before it
   *  (else the first) at `speed` wall seconds per presentation second; null when empty. */
  wallAt(pts, speed) {
    const n = this.pts.length;
    if (n === 0) return null;
    let lo = 0, hi = n - 1;
    if (pts <= this.pts[0]) hi = 0;
    while (lo < hi) { // the last at or before pts
      const mid = (lo + hi + 1) >> 1;
      if (this.pts[mid] <= pts) lo = mid; else hi = mid - 1;
    }
    return this.wall[lo] + (pts - this.pts[lo]) * speed;
  }

  /** The presentation time (µs) at which recorded wall time `wall` (µs) is shown; null when empty. */
  ptsAt(wall, speed) {
    const n = this.pts.length;
    if (n === 0) return null;
    let best = -1; // the frame recorded last at or before `wall` (else the first): walls rise with pts
    for (let i = 0; i < n; i++) if (this.wall[i] <= wall && (best < 0 || this.wall[i] >= this.wall[best])) best = i;
    if (best < 0) best = 0;
    return this.pts[best] + (wall - this.wall[best]) / speed;
  }
}

/** The leader's cursor at epoch ms `now`: its recorded wall time (Unix s), run on at its speed; null
 *  when there is none, it is stale, or it is not playing. */
export function cursorAt(cursor, now) {
  if (!cursor || !cursor.playing || now - cursor.at > STALE_MS) return null;
  return cursor.wall + ((now - cursor.at) / 1000) * cursor.speed;
}

/** A follower's video clock offset (µs, added to its own clock) that takes it to the leader's. */
export class Follower {
  constructor() {
    this.offset = 0;
    this.last = null; // epoch ms of the latest update
    this.stepped = 0;
    this.fresh = true; // the next error is stepped whatever its size (a seek, the start)
    this.drift = new Drift();
  }

  /** Start over (a seek): the next error is taken in one step. */
  reset() {
    this.fresh = true;
    this.last = null;
    this.drift.clear();
  }

  /** How fast the leader's clock runs against this follower's, less one (0.01: 1 % faster). */
  get rate() {
    return this.drift.slope();
  }

  /**
   * At epoch ms `now`, the follower's own clock reads `own` (µs) and the leader's clock, in the
   * follower's presentation time, is `target` (µs; null: nothing to follow, the offset is kept).
   * Returns the offset to present by: `own + offset` approaches `target` at most MAX_TRIM fast.
   */
  update(now, own, target) {
    const dt = this.last === null ? 0 : Math.max(0, Math.min(1000, now - this.last)) * 1000; // µs
    this.last = now;
    if (target === null || own === null) return this.offset;
    const needed = target - own;
    const error = needed - this.offset;
    if (this.fresh || Math.abs(error) > STEP_US) {
      this.offset = needed;
      this.fresh = false;
      this.stepped++;
      this.drift.clear();
      this.drift.add(now, needed);
    } else {
      this.drift.add(now, needed);
      const rate = Math.max(-MAX_TRIM, Math.min(MAX_TRIM, this.drift.slope()));
      const ahead = error - rate * dt; // what the drift alone will not take up
      const wanted = rate * dt + (Math.abs(ahead) > DEADBAND_US ? ahead * Math.min(1, dt / (SLEW_TIME_S * 1e6)) : 0);
      const cap = MAX_TRIM * dt;
      this.offset += Math.max(-cap, Math.min(cap, wanted));
    }
    this.offset = Math.max(-MAX_OFFSET_US, Math.min(MAX_OFFSET_US, this.offset));
    return this.offset;
  }
}

/** The offset a follower needs against time, and the rate it moves at (a line, clock.js fitLine,
 *  over the last DRIFT_SPAN_MS). */
class Drift {
  constructor() {
    this.t = new Float64Array(DRIFT_READINGS);
    this.v = new Float64Array(DRIFT_READINGS);
    this.n = 0;
    this.i = 0;
    this.line = newLine();
  }

  clear() {
    this.n = 0;
  }

  /** At epoch ms `now`, the offset needed was `needed` µs. */
  add(now, needed) {
    this.t[this.i] = now;
    this.v[this.i] = needed;
    this.i = (this.i + 1) % DRIFT_READINGS;
    this.n = Math.min(DRIFT_READINGS, this.n + 1);
  }

  /** µs of offset per µs of time over the span; 0 until the readings span DRIFT_MIN_MS. */
  slope() {
    if (this.n === 0) return 0;
    const newest = this.t[(this.i + DRIFT_READINGS - 1) % DRIFT_READINGS];
    const line = fitLine(this.t, this.v, this.n, newest, DRIFT_SPAN_MS, this.line);
    return newest - line.oldest < DRIFT_MIN_MS ? 0 : line.slope / 1000; // µs per ms to µs per µs
  }
}

/** The leader of a group: the player acted on, while it plays a recording; else the first that does.
 *  `players`: [{ id, recording }], `preferred`: an id. */
export function leaderOf(players, preferred) {
  const playing = players.filter((p) => p.recording);
  return playing.find((p) => p.id === preferred) ?? playing[0] ?? null;
}
