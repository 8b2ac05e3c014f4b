// The live sound's buffer (latency.js) through a page's minutes, replayed in milliseconds: a
// network that delivers 20 ms packets, a decoder that outputs pictures, and a worklet that plays
// the buffer at the trimmed rate, stops when it runs dry and drops what it is told to skip.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Arrivals, AudioLatency, LATENCY } from "../../src/opticlink/web/latency.js";

const MS = 1000; // µs

/**
 * Play `seconds` of a live view. `delay(pts)`: network and page delay of the audio packet of that
 * presentation time, ms (arrivals never overtake one another); `videoDelay(pts)`: when the picture
 * of that time leaves the decoder, ms after it; `stall(t)`: the audio output is stalled at t;
 * `outputRate`: the audio output's clock against the camera's (0.997: 0.3 % slow).
 */
function play(seconds, { delay = () => 5, videoDelay = () => 20, stall = () => false, playback = false,
                         at = [], arrivals = null, outputRate = 1 } = {}) {
  const latency = new AudioLatency({ playback, arrivals });
  const packets = [];
  let last = 0;
  for (let pts = 0; pts < seconds * 1000; pts += 20) {
    last = Math.max(last, pts + delay(pts));
    packets.push([last, pts]);
  }
  const pictures = [];
  for (let pts = 0; pts < seconds * 1000; pts += 40) pictures.push([pts + videoDelay(pts), pts]);
  pictures.sort((a, b) => a[0] - b[0]);
  let received = 0, played = 0, playing = false, underruns = 0, skips = 0, trim = 0, p = 0, v = 0;
  const samples = [];
  for (let t = 0; t < seconds * 1000; t += 1) {
    while (p < packets.length && packets[p][0] <= t) {
      latency.arrival(t * MS, packets[p][1] * MS);
      latency.packet(20);
      received += 20;
      p++;
    }
    while (v < pictures.length && pictures[v][0] <= t) latency.decoded(t * MS, pictures[v++][1] * MS);
    if (!playing) {
      const start = latency.startLevel();
      if (start !== null && received - played >= start) playing = true;
    } else if (!stall(t)) {
      played += outputRate * (1 + trim);
      if (played > received) { played = received; playing = false; underruns++; }
    }
    if (t % 100 === 0) {
      const bufferMs = received - played;
      const decision = latency.control(t * MS, { bufferMs, playing, underruns });
      if (decision.skipMs > 0) {
        played += Math.min(decision.skipMs, bufferMs);
        if (playing) skips++;
      }
      trim = decision.trim;
      samples.push({ t, buffer: received - played, target: latency.target(), trim, playing });
    }
    for (const [when, action] of at) if (when === t) action(latency);
  }
  const atTime = (s) => samples.find((x) => x.t >= s * 1000);
  return { latency, samples, underruns, skips, atTime };
}

/** The page loads for half a second (the packets of that time arrive with it), then a quiet loopback. */
const pageStart = (pts) => (pts < 500 ? 500 - pts : 3);
/** The group of pictures in the cache decodes in a burst 300 ms behind the sound, and the decoder
 *  catches up over the next 2.4 s (as measured on a loaded page: target 370, 242, then 40 ms). */
const burstDecode = (pts) => (pts < 2400 ? 300 - pts / 8 : 25);

test("a page's start settles at its target within a few seconds, without an underrun", () => {
  const run = play(12, { delay: pageStart, videoDelay: burstDecode });
  assert.equal(run.underruns, 0);
  assert.equal(run.atTime(2).playing, true, "sound starts after the warm-up");
  for (const s of [7, 9, 11]) {
    const { buffer, target } = run.atTime(s);
    assert.ok(Math.abs(buffer - target) < 10, `${s} s: ${buffer.toFixed(1)} ms buffered, target ${target.toFixed(1)}`);
  }
  assert.ok(run.atTime(11).target <= 60, `the target follows the steady lateness: ${run.atTime(11).target}`);
});

test("the burst's late pictures hold the target only until the steady ones replace them", () => {
  const run = play(10, { delay: pageStart, videoDelay: burstDecode });
  assert.ok(run.atTime(1.5).target > 120, "in the warm-up, the decoder's lag counts");
  assert.ok(run.atTime(8).target < 70, `later, it does not: ${run.atTime(8).target}`);
});

test("an audio output that stalls while packets keep coming is brought back by one crossfaded skip", () => {
  const stall = (t) => t >= 10_000 && t < 10_120;
  const run = play(16, { delay: pageStart, videoDelay: burstDecode, stall });
  const quiet = play(16, { delay: pageStart, videoDelay: burstDecode }); // the same start, no stall
  assert.equal(run.underruns, 0);
  assert.ok(run.atTime(10.2).buffer - run.atTime(10.2).target > 100, "the stall left sound in the buffer");
  assert.equal(run.skips - quiet.skips, 1, "one skip removed it");
  const { buffer, target } = run.atTime(13.5);
  assert.ok(buffer - target < 20, `${buffer.toFixed(1)} ms buffered 3.5 s later, target ${target.toFixed(1)}`);
});

test("a small excess is trimmed away at an inaudible rate, never skipped", () => {
  const stall = (t) => t >= 10_000 && t < 10_040;
  const run = play(30, { delay: pageStart, videoDelay: burstDecode, stall });
  const quiet = play(30, { delay: pageStart, videoDelay: burstDecode });
  assert.equal(run.skips, quiet.skips);
  assert.ok(run.samples.every((x) => Math.abs(x.trim) <= LATENCY.maxTrim));
  assert.ok(run.atTime(10.3).trim > 0, "played a little faster");
  const { buffer, target } = run.atTime(25);
  assert.ok(Math.abs(buffer - target) < 5, `${buffer.toFixed(1)} ms buffered, target ${target.toFixed(1)}`);
});

test("late packets raise the target before the buffer runs dry, and it falls once they leave the window", () => {
  // from 15 s, every second packet of a 400 ms stretch comes 70 ms late
  const delay = (pts) => (pts >= 15_000 && pts < 15_400 && (pts / 20) % 2 ? 70 : pageStart(pts));
  const run = play(40, { delay, videoDelay: burstDecode });
  assert.ok(run.underruns <= 1, `${run.underruns} underruns`);
  assert.ok(run.atTime(17).target > 80, `the target covers the lateness: ${run.atTime(17).target}`);
  assert.ok(run.atTime(39).target < 60, `and forgets it ten seconds later: ${run.atTime(39).target}`);
  const { buffer, target } = run.atTime(39);
  assert.ok(buffer - target < 30, `${buffer.toFixed(1)} ms buffered, target ${target.toFixed(1)}`);
});

test("each underrun adds 20 ms of safety that fades over a minute", () => {
  const [latency, quiet] = [new AudioLatency(), new AudioLatency()]; // the same stream, one that never ran dry
  for (const l of [latency, quiet]) {
    l.arrival(0, 0);
    l.arrival(1_100 * MS, 1_100 * MS); // out of the warm-up
    l.control(1_100 * MS, { bufferMs: 40, playing: true, underruns: 0 });
  }
  const at = (t, underruns) => {
    latency.control(t * MS, { bufferMs: 40, playing: true, underruns });
    quiet.control(t * MS, { bufferMs: 40, playing: true, underruns: 0 });
    return latency.target() - quiet.target();
  };
  assert.ok(Math.abs(at(1_200, 1) - 20) < 0.1);
  assert.ok(Math.abs(at(31_200, 1) - 10) < 0.1);
  assert.equal(at(91_200, 1), 0);
});

test("sound does not start in the warm-up, and what was not heard is dropped down to the target", () => {
  const latency = new AudioLatency();
  latency.arrival(0, 0);
  assert.equal(latency.startLevel(), null);
  latency.arrival(1_000 * MS, 1_000 * MS);
  assert.equal(latency.startLevel(), latency.target());
  const { skipMs } = latency.control(1_000 * MS, { bufferMs: 300, playing: false, underruns: 0 });
  assert.equal(skipMs, 300 - latency.target());
});

test("a recording's sound is buffered deeper", () => {
  const run = play(8, { playback: true });
  assert.equal(run.underruns, 0);
  assert.ok(run.atTime(7).target >= LATENCY.playbackFloorMs);
  assert.ok(Math.abs(run.atTime(7).buffer - run.atTime(7).target) < 10);
});

test("lateness is split by the server's send time: the camera's network, and the page's own delivery", () => {
  const latency = new AudioLatency();
  for (let pts = 0; pts < 20_000; pts += 20) {
    const network = pts % 400 === 0 ? 30 : 2; // the camera's path: a packet 28 ms late now and then
    const delivery = pts % 1000 === 20 ? 50 : 1; // the page: its Worker held up 49 ms now and then
    const sent = pts + network;
    latency.arrival((sent + delivery) * MS, pts * MS, delivery * MS + 7_000_000); // clocks 7 s apart
  }
  const { networkMs, deliveryMs } = latency.jitterParts();
  assert.ok(Math.abs(networkMs - 28) < 1, `network ${networkMs}`);
  assert.ok(Math.abs(deliveryMs - 49) < 1, `delivery ${deliveryMs}`);
  assert.ok(latency.jitterMs() >= 48 && latency.jitterMs() <= 28 + 49 + 1, `whole ${latency.jitterMs()}`);
});

test("a camera made audible on the wall starts with the lateness measured while it was muted", () => {
  // every 2 s, a 400 ms stretch of packets comes 60 ms late (a loaded machine); the camera was on the
  // wall, muted, for the 20 s before it is clicked at 0
  const burst = (pts) => (((pts % 2000) + 2000) % 2000 >= 1300 && ((pts % 2000) + 2000) % 2000 < 1700 ? 60 : 3);
  const muted = new Arrivals();
  let last = -20_000;
  for (let pts = -20_000; pts < 0; pts += 20) {
    last = Math.max(last, pts + burst(pts));
    muted.add(last * MS, pts * MS);
  }
  const heard = play(8, { delay: burst, arrivals: muted });
  assert.equal(heard.underruns, 0);
  const { target } = heard.atTime(1.2);
  assert.ok(target > 20 + 50 + LATENCY.marginMs, `target ${target}`); // covers the bursts
  assert.ok(target < LATENCY.startDepthMs, `target ${target}`); // and no more: a new stream's start depth is not needed
});

test("an output clock 0.1 % off the camera's is made up by a learnt trim, the buffer held at its target", () => {
  // A camera's clock and a sound card's differ by up to about 0.1 % (Chromium's output here: 0.3 %).
  // A trim that only answered the excess it saw needed 4 ms of it (12 ms at 0.3 %) to make that up.
  for (const outputRate of [0.999, 1.001]) {
    const run = play(60, { delay: pageStart, videoDelay: burstDecode, outputRate });
    assert.equal(run.underruns, 0);
    for (const s of [40, 50, 59]) {
      const { buffer, target } = run.atTime(s);
      assert.ok(Math.abs(buffer - target) < 2, `${outputRate} at ${s} s: ${buffer.toFixed(1)} ms buffered, target ${target.toFixed(1)}`);
    }
  }
});

test("a late burst right after the sound starts (the page still loading) does not run it dry", () => {
  // packets from 1.6 s to 1.7 s come 60 ms late, half a second after the sound started with its
  // target (40 ms) buffered: a second of warm-up had no reason to make it deeper
  const delay = (pts) => (pts >= 1_600 && pts < 1_700 ? 60 : 3);
  const run = play(20, { delay });
  assert.equal(run.underruns, 0);
  assert.ok(run.atTime(1.6).playing, "the sound had started");
  const { buffer, target } = run.atTime(8);
  assert.ok(Math.abs(buffer - target) < 10, `8 s: ${buffer.toFixed(1)} ms buffered, target ${target.toFixed(1)}`);
  assert.ok(run.atTime(19).target <= 50, `the start's depth is not kept: ${run.atTime(19).target}`);
});
