// The frame chooser, sans-IO (tests/js/frames.test.mjs): which decoded picture an animation frame
// shows, which are dropped unseen, and when decoding has fallen so far behind that its backlog is
// flushed. Pictures carry `timestamp` (µs, presentation time) as WebCodecs' VideoFrame does.

export const WATCHDOG_US = 200_000; // video this far behind the clock, with a decode backlog: flush

// A late picture is dropped so that the next, on time, is shown instead; but when every picture comes
// late (a starved decoder, a synchronized follower whose stream is behind its leader's) that would
// freeze the screen: once the picture on screen has stood this long, a late one is shown.
export const STILL_US = 250_000;

/**
 * Choose from `frames` (sorted by timestamp; the chosen and the passed-over are removed from its
 * front) for a picture on screen when the clock reads `clock`, staying up `held` µs: the latest
 * picture due by the middle of its time on screen. Returns `{ show, passed, late }`: the picture to
 * draw (null: none is due yet, or the one due is `late`, more than `period` behind the clock, and
 * not worth showing while the picture on screen has stood less than STILL_US, `stillUs`), and the
 * pictures passed over (the caller closes them and `late`).
 */
export function choose(frames, clock, held, period, stillUs = 0) {
  const due = clock + held / 2;
  const passed = [];
  let show = null;
  while (frames.length && frames[0].timestamp <= due) {
    if (show) passed.push(show);
    show = frames.shift();
  }
  if (show && show.timestamp < clock - period && stillUs < STILL_US) return { show: null, passed, late: show };
  return { show, passed, late: null };
}

/** Whether decoding has fallen far behind: the newest decoded picture is older than the clock by
 *  `WATCHDOG_US` while the decoder still holds a backlog. */
export function fallenBehind(frames, clock, decodeQueueSize) {
  return frames.length > 0 && frames[frames.length - 1].timestamp < clock - WATCHDOG_US && decodeQueueSize > 2;
}

/** The frame period from the two oldest decoded pictures, bounded to 10–100 ms; `previous` otherwise. */
export function framePeriod(frames, previous) {
  if (frames.length < 2) return previous;
  return Math.max(10000, Math.min(100000, frames[1].timestamp - frames[0].timestamp));
}

export const BEHIND_MS = 1000; // a picture shown late this recently means decoding is behind
export const KEYFRAMES_ONLY_BELOW_PX = 160; // a tile narrower than this (device pixels) decodes keyframes only

/**
 * Whether to leave a received picture undecoded, where the codec allows it: a tile too small to
 * show motion decodes keyframes only; a player that is behind (more than one picture waiting in
 * the decoder, or a picture shown late within BEHIND_MS) leaves out pictures no other is predicted
 * from (`nonReference`), so the ones that matter come out in time.
 */
export function leaveUndecoded({ key, nonReference, keyframesOnly, decodeQueue, sinceLateMs }) {
  if (key) return false;
  if (keyframesOnly) return true;
  return nonReference && (decodeQueue > 1 || sinceLateMs < BEHIND_MS);
}
