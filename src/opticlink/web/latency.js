// The live sound's buffer: how deep it must be (its target) and how it is held there.
//
// Sans-IO, like the server's protocol cores: fed arrival times, decode times and buffer levels, it
// returns what to do, and never reads a clock, so a page's minutes replay in a unit test
// (tests/js/latency.test.mjs). live-worker.js owns the clock and the ring.
//
// The target follows the measured lateness: one packet's duration (a 128 ms packet leaves 128 ms
// between arrivals) plus the latest any audio frame arrived, compared with the earliest, over about
// ten seconds, plus 10 ms, and 40 ms at least (250 ms for a recording, which no one waits for at the
// other end). A decoder holds frames back by the stream's reorder depth (B-frames), so the target
// also covers the latest decoded video frame of the last 64, plus a display interval to draw it in.
// Each underrun adds 20 ms of safety that fades over a minute.
//
// The first second of a view is different: the page is loading and the current group of pictures
// arrives in a burst, so sound that played at once would run dry. Sound starts after that second
// (the warm-up), with only the target buffered (older samples are dropped before they are heard);
// the latest audio arrival of the warm-up, and how late the decoder still ran at its end (the
// burst's first pictures are only the way to the live one), count until the steady lateness is
// measured. The sound starts deeper than that (100 ms for 1.5 s, eased to the target over the next
// 1.5 s: the page's own start can hold audio back more than the warm-up showed). For the
// next few seconds (the settling) a buffer over its target by more than 10 ms skips down to it: the
// burst's last decoded pictures leave the window then, and the target falls with them.
//
// Then the buffer is held at its target by rate trims of at most 0.5 % (inaudible: under 9 cents),
// following its level smoothed over about half a second, plus the rate the output's clock is learnt
// to differ from the camera's by. A buffer that stays more than 60 ms over
// its target for 2 s (the audio output stalled while the network kept delivering, or the path got
// shorter) skips down to it, and one more than 150 ms over at once: 0.5 % would take tens of
// seconds to remove it. A skip is crossfaded by the worklet, never a click.

export const LATENCY = Object.freeze({
  floorMs: 40,
  playbackFloorMs: 250,
  marginMs: 10,
  latenessWindow: 512, // audio frames (about 10 s of 20 ms packets)
  latenessKnown: 50, // steady frames measured before the target follows them alone
  videoWindow: 64, // decoded frames (2.5 s at 25 fps)
  videoMarginMs: 25,
  warmupUs: 1_000_000, // from the first audio frame, before the sound starts
  playbackWarmupUs: 300_000, // ... of a recording: no page loading, no burst; its floor covers the rest
  settleUs: 4_000_000, // after the warm-up, how long a buffer over its target skips down to it
  settleExcessMs: 10,
  // A new stream's sound starts deeper than its target, this deep for `startHoldUs` and then less over
  // `startEaseUs` (within the settling, whose skips take the rest away): the page's own start (its other
  // players starting, their decoders' bursts) can hold audio back more than the warm-up showed, and
  // a target of one second's measure ran dry half a second after the sound started. A stream whose
  // lateness is measured already (a muted wall tile made audible) starts at its target.
  startDepthMs: 100,
  startHoldUs: 1_500_000,
  startEaseUs: 1_500_000,
  maxTrim: 0.005,
  trimSpanMs: 20, // the full trim is applied this far from the target
  levelSmoothing: 0.2, // per decision (every 100 ms): a running mean over about half a second
  // The trim learns the output clock's rate against the camera's (an integral term; critically damped
  // with the proportional one: settles in about 15 s), so the buffer sits at its target instead of
  // as far over it as the proportional trim needs to make up the difference (4 ms for 0.1 %). An
  // excess beyond `learnSpanMs` (a stall, a target that fell) teaches nothing. The rate learnt is at
  // most `learntMaxTrim`: a sound card against a camera's clock differ by less (0.03 % and 300 ppm);
  // the more is learnt, the deeper the buffer falls under its target while the rate changes
  // (Chromium's output here measured 0.3 % slow on a quiet page, 0.1 % fast on a busy one).
  learnPerMsS: (0.005 / 20) ** 2 * 1000 / 4, // per ms of excess per second
  learnSpanMs: 15,
  learntMaxTrim: 0.001,
  sustainedExcessMs: 60,
  sustainedUs: 2_000_000,
  hardExcessMs: 150,
  underrunSafetyMs: 20,
  safetyFadeMsPerS: 20 / 60,
  earliestDriftMsPerS: 1, // the earliest arrival is remembered with a slow upward drift
  restartUs: 60_000_000,
});

/**
 * How late each frame of a stream comes, compared with the earliest (for its time): the smallest
 * delay (arrival minus the frame's time) is remembered with a slow upward drift, 1 ms per second,
 * to follow a path that gets longer; the worst lateness of the last `size` frames is the jitter to
 * cover. A delay a minute away from the earliest (a clock that restarted or wrapped) starts again.
 */
export class Lateness {
  constructor(size) {
    this.values = new Float64Array(size);
    this.count = 0;
    this.earliest = null; // µs
    this.earliestAt = 0;
  }

  /** A frame `delayUs` after its time, at `nowUs`: its lateness, ms, kept in the window if `keep`. */
  add(nowUs, delayUs, keep = true) {
    if (this.earliest === null || Math.abs(delayUs - this.earliest) > LATENCY.restartUs) this.earliest = delayUs;
    else this.earliest = Math.min(delayUs, this.earliest + ((nowUs - this.earliestAt) * LATENCY.earliestDriftMsPerS) / 1000);
    this.earliestAt = nowUs;
    const lateness = (delayUs - this.earliest) / 1000;
    if (keep) this.values[this.count++ % this.values.length] = lateness;
    return lateness;
  }

  /** The worst lateness in the window, ms. */
  worst() {
    const n = Math.min(this.count, this.values.length);
    let worst = 0;
    for (let i = 0; i < n; i++) if (this.values[i] > worst) worst = this.values[i];
    return worst;
  }
}

/**
 * How late a stream's audio frames come, whether they are heard or not: arrival at this page
 * against presentation time (`total`), the server's send against presentation time (`network`),
 * arrival against the server's send (`delivery`). A muted player of the wall keeps measuring
 * (one call per frame), so that the camera made audible starts with the lateness of the last ten
 * seconds instead of a second's: a target guessed from one second ran dry at the first late burst.
 * The stream's first `warmupUs` (the page loading) is left out, as AudioLatency's warm-up is.
 */
export class Arrivals {
  constructor(warmupUs = LATENCY.warmupUs) {
    this.warmupUs = warmupUs;
    this.total = new Lateness(LATENCY.latenessWindow);
    this.network = new Lateness(LATENCY.latenessWindow);
    this.delivery = new Lateness(LATENCY.latenessWindow);
    this.firstAt = null;
  }

  /** A frame of presentation time `ptsUs` arrived at `nowUs`, `deliveryUs` after the server sent it
   *  (null: not said); kept in the windows if `keep` (and past the stream's first warmupUs).
   *  Returns its lateness, ms. */
  add(nowUs, ptsUs, deliveryUs = null, keep = true) {
    this.firstAt ??= nowUs;
    keep &&= nowUs - this.firstAt >= this.warmupUs;
    const lateness = this.total.add(nowUs, nowUs - ptsUs, keep);
    if (deliveryUs !== null) {
      this.network.add(nowUs, nowUs - deliveryUs - ptsUs, keep);
      this.delivery.add(nowUs, deliveryUs, keep);
    }
    return lateness;
  }
}

export class AudioLatency {
  /**
   * `playback`: the sound of a recording (deeper floor, shorter warm-up). `arrivals`: the stream's
   * lateness measured so far (Arrivals, shared: this adds to it), else its own, which its warm-up
   * keeps the page's loading out of.
   */
  constructor({ playback = false, arrivals = null } = {}) {
    this.playback = playback;
    this.packetMs = 20;
    this.arrivals = arrivals ?? new Arrivals(0);
    this.total = this.arrivals.total; // arrival at this page against presentation time
    this.network = this.arrivals.network; // the server's send against presentation time
    this.delivery = this.arrivals.delivery; // arrival at this page against the server's send
    this.firstAt = null;
    this.warmup = true;
    this.warmupWorst = 0; // ms, the latest audio arrival in the warm-up
    this.videoWarmup = 0; // ms, how late the decoder ran at the end of the warm-up (its burst caught up or not)
    this.settleUntil = null;
    this.startAt = null; // µs, when the warm-up ended without the lateness known (startDepthMs applies)
    this.clock = null; // µs, the latest time this was told of (an arrival, a decision)
    this.videoLate = new Float64Array(LATENCY.videoWindow);
    this.videoCount = 0;
    this.safety = 0;
    this.underrunsSeen = null;
    this.learnt = 0; // the output clock's rate the trim makes up (integral term)
    this.level = null;
    this.overSince = null;
    this.lastAt = null;
    this.skips = 0;
  }

  /**
   * An audio frame of presentation time `ptsUs` arrived at `nowUs`, `deliveryUs` after the server
   * sent it (null when the server does not say; the two clocks need not agree: only changes count).
   */
  arrival(nowUs, ptsUs, deliveryUs = null) {
    const lateness = this.arrivals.add(nowUs, ptsUs, deliveryUs, !this.warmup);
    if (this.warmup) {
      this.warmupWorst = Math.max(this.warmupWorst, lateness);
      if (this.firstAt === null) this.firstAt = nowUs;
      if (nowUs - this.firstAt >= (this.playback ? LATENCY.playbackWarmupUs : LATENCY.warmupUs)) {
        this.warmup = false;
        this.settleUntil = nowUs + LATENCY.settleUs;
        if (!this.playback && this.total.count < LATENCY.latenessKnown) this.startAt = nowUs;
      }
    }
    this.clock = Math.max(this.clock ?? nowUs, nowUs);
  }

  /** The start's extra depth (startDepthMs) at `nowUs`, ms. */
  startDepth(nowUs) {
    if (this.startAt === null || nowUs === null) return 0;
    const ease = (nowUs - this.startAt - LATENCY.startHoldUs) / LATENCY.startEaseUs;
    return LATENCY.startDepthMs * Math.max(0, Math.min(1, 1 - ease));
  }

  /** A video frame of presentation time `ptsUs` left the decoder at `nowUs`. */
  decoded(nowUs, ptsUs) {
    if (this.total.earliest === null) return; // before the first sound: nothing to be late for yet
    const late = (nowUs - ptsUs - this.total.earliest) / 1000;
    if (this.warmup) this.videoWarmup = late;
    else this.videoLate[this.videoCount++ % LATENCY.videoWindow] = late;
  }

  /** Video starts again (a seek): its old lateness no longer applies. */
  resetVideo() {
    this.videoCount = 0;
  }

  /** The duration of the latest packet, ms. */
  packet(ms) {
    this.packetMs = ms;
  }

  /** The worst steady audio lateness in the window, ms (the player's `jitterMs`). */
  jitterMs() {
    return this.total.worst();
  }

  /** The same, split: camera to server (`network`), and server to this page's Worker (`delivery`:
   *  the server's send path, the socket, and the browser's own scheduling of the Worker). */
  jitterParts() {
    return { networkMs: this.network.worst(), deliveryMs: this.delivery.worst() };
  }

  /** Whether the steady lateness is measured: until then, the warm-up's counts too. */
  get known() {
    return !this.warmup && this.total.count >= LATENCY.latenessKnown;
  }

  /** The buffer to hold, ms. */
  target() {
    let video = 0;
    for (let i = 0; i < Math.min(this.videoCount, LATENCY.videoWindow); i++) video = Math.max(video, this.videoLate[i]);
    if (!this.known) video = Math.max(video, this.videoWarmup);
    const lateness = this.known ? this.jitterMs() : Math.max(this.jitterMs(), this.warmupWorst);
    const needed = Math.max(this.packetMs + lateness + LATENCY.marginMs, video + LATENCY.videoMarginMs);
    const floor = this.playback ? LATENCY.playbackFloorMs : Math.max(LATENCY.floorMs, this.startDepth(this.clock));
    return Math.max(floor, needed) + this.safety;
  }

  /** The buffer to fill before sound starts or resumes, ms; null in the warm-up (not yet). */
  startLevel() {
    return this.warmup ? null : this.target();
  }

  /**
   * One decision (every 100 ms or so) from the buffer now (`bufferMs`), whether sound plays and
   * the worklet's underrun count. Returns `{ skipMs, trim }`: the samples to drop (crossfaded when
   * playing) and the playback rate's offset from 1.
   */
  control(nowUs, { bufferMs, playing, underruns }) {
    const elapsedS = this.lastAt === null ? 0 : Math.max(0, (nowUs - this.lastAt) / 1e6);
    this.lastAt = nowUs;
    this.clock = Math.max(this.clock ?? nowUs, nowUs);
    if (this.underrunsSeen !== null && underruns > this.underrunsSeen) {
      this.safety += LATENCY.underrunSafetyMs * (underruns - this.underrunsSeen);
    }
    this.underrunsSeen = underruns;
    this.safety = Math.max(0, this.safety - LATENCY.safetyFadeMsPerS * elapsedS);
    const target = this.target();
    this.level = this.level === null ? bufferMs : this.level + LATENCY.levelSmoothing * (bufferMs - this.level);
    if (!playing) { // not heard yet: sound starts (or resumes) with only the target buffered
      this.overSince = null;
      return { skipMs: Math.max(0, bufferMs - target), trim: 0 };
    }
    const excess = Math.min(this.level, bufferMs) - target; // never skip what is not there now
    const settling = this.known && nowUs < this.settleUntil;
    if (excess > LATENCY.sustainedExcessMs) this.overSince ??= nowUs;
    else this.overSince = null;
    const sustained = this.overSince !== null && nowUs - this.overSince >= LATENCY.sustainedUs;
    if (excess > LATENCY.hardExcessMs || sustained || (settling && excess > LATENCY.settleExcessMs)) {
      this.level = target;
      this.overSince = null;
      this.skips++;
      return { skipMs: excess, trim: 0 };
    }
    const off = this.level - target;
    const learn = Math.abs(off) <= LATENCY.learnSpanMs ? off * LATENCY.learnPerMsS * elapsedS : 0;
    this.learnt = Math.max(-LATENCY.learntMaxTrim, Math.min(LATENCY.learntMaxTrim, this.learnt + learn));
    const trim = this.learnt + (LATENCY.maxTrim * off) / LATENCY.trimSpanMs;
    return { skipMs: 0, trim: Math.max(-LATENCY.maxTrim, Math.min(LATENCY.maxTrim, trim)) };
  }
}
