// The diagnostics page's data shaping: the route's columns as plots for uPlot, and their summaries.
import assert from "node:assert/strict";
import { test } from "node:test";

import { hasData, plotsOf, rangeOf, summaryOf, tracksOf } from "../../src/opticlink/web/diagnostics.js";

const report = {
  camera: "cam2", seconds: 600, step_s: 2, t: [100, 102, 104],
  series: {
    "video.skew_ppm": [null, 0, 1], "video.jitter_ms": [1, 2, 3], "video.lost": [null, 0, 0],
    "video.reordered": [null, 0, 2], "video.reanchors": [null, 0, 0], "video.loss_pct": [null, 0, 0],
    "video.source": [0, 1, 1],
    "audio.skew_ppm": [null, 300, 301], "audio.jitter_ms": [40, 41, 39], "audio.lost": [null, 1, 0],
    "audio.reordered": [null, 0, 0], "audio.reanchors": [null, 0, 1], "audio.loss_pct": [null, 2.5, 0],
    "audio.source": [0, 0, 2],
    av_correction_ms: [null, -12.5, -12], connected: [1, 1, 1],
    viewer_underruns: [null, 0, 2], viewer_latency_ms: [null, 64.5, 80],
  },
  source_codes: { arrival: 0, rtcp: 1, fallback: 2 }, verdict: "the camera's audio clock runs 300 ppm fast; corrected",
};

test("tracks come from the series names, audio first", () => {
  assert.deepEqual(tracksOf(report.series), ["audio", "video"]);
  assert.deepEqual(tracksOf({ "video-1.skew_ppm": [], "video.skew_ppm": [], av_correction_ms: [] }), ["video", "video-1"]);
  assert.deepEqual(tracksOf(undefined), []);
});

test("each plot has a series per track, aligned with the times", () => {
  const plots = Object.fromEntries(plotsOf(report).map((p) => [p.id, p]));
  assert.deepEqual(Object.keys(plots), ["skew", "jitter", "loss", "source", "av", "viewer"]);
  assert.deepEqual(plots.skew.series.map((s) => [s.label, s.values]),
                   [["audio ppm", [null, 300, 301]], ["video ppm", [null, 0, 1]]]);
  assert.deepEqual(plots.loss.series.map((s) => s.label), ["audio lost %", "video lost %", "audio reordered", "video reordered"]);
  assert.equal(plots.loss.series[2].scale, "count");
  const [audioSource, videoSource, audioReanchors] = plots.source.series;
  assert.equal(audioSource.kind, "step");
  assert.deepEqual(audioSource.values.map((v) => Math.round(v) + 0), [0, 0, 2]);  // a little apart, one track not hiding another
  assert.ok(audioSource.values[0] < videoSource.values[0]);
  assert.deepEqual(audioReanchors.values, [null, null, 1]);  // only the intervals with re-anchors show
  assert.deepEqual(plots.av.series[0].values, [null, -12.5, -12]);
  // the live viewers: the slowest one's latency, and the intervals in which a player underran
  assert.deepEqual(plots.viewer.series.map((s) => [s.label, s.values, s.scale]),
                   [["slowest viewer latency p95 ms", [null, 64.5, 80], undefined], ["underruns", [null, null, 2], "count"]]);
  for (const plot of plotsOf(report)) for (const s of plot.series) assert.equal(s.values.length, report.t.length);
  assert.notEqual(plots.skew.series[0].color, plots.skew.series[1].color);
});

test("no data until a time has some known value", () => {
  assert.equal(hasData(report), true);
  assert.equal(hasData({ t: [], series: {} }), false);
  assert.equal(hasData({ t: [1], series: { "audio.skew_ppm": [null], connected: [0] } }), true);  // offline is data
  assert.equal(hasData({ t: [1], series: { "audio.skew_ppm": [null] } }), false);
  assert.equal(hasData(null), false);
});

test("summaries read the latest known values, sources by name", () => {
  const plots = Object.fromEntries(plotsOf(report).map((p) => [p.id, p]));
  assert.equal(summaryOf(plots.skew), "Clock skew, latest: audio ppm: 301, video ppm: 1");
  assert.match(summaryOf(plots.source), /audio source: fallback, video source: reports/);
  assert.equal(summaryOf({ title: "X", series: [{ label: "a", values: [null] }] }), "X, latest: a: unknown");
});

test("the x range is the span up to the last sample, or the history when younger (a minute at least)", () => {
  assert.deepEqual(rangeOf(report), [104 - 60, 104]);
  const day = { seconds: 600, t: Array.from({ length: 1000 }, (_, i) => 1000 + 2 * i) };
  assert.deepEqual(rangeOf(day), [2998 - 600, 2998]);
  assert.deepEqual(rangeOf({ ...day, t: day.t.slice(-200) }), [2600, 2998]);
});
