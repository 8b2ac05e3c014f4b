// Words the pages show: the connection test's summary of a camera whose sound is in a codec OpticLink does
// not take, and the diagnostics page's line about the recording's gaps.
import assert from "node:assert/strict";
import { test } from "node:test";

import { probeSummary } from "../../src/opticlink/web/cameras.js";
import { cameraOf, recordingText } from "../../src/opticlink/web/diagnostics.js";

test("the connection test names unsupported sound and lists the problem in words", () => {
  const problem = "audio codec MPEG audio (MP2/MP3) (MPA) is not supported: the camera's sound cannot be heard or "
    + "recorded (choose G.711, AAC or L16 in the camera's audio settings)";
  const summary = probeSummary({
    playing: true, sender_reports: 4, tracks: [{ kind: "video", codec: "H264" }],
    video: { codec: "H264", name: "H.264", width: 320, height: 180, frame_rate: 25 },
    audio: { codec: "MPA", name: "MPEG audio (MP2/MP3)", supported: false }, problems: [problem],
  });
  assert.equal(summary.found, "1 track: video H264; video H.264 320x180 at 25 fps; "
    + "audio MPEG audio (MP2/MP3) (not supported: no sound); timing reports: yes");
  assert.deepEqual(summary.problems, [problem]);
  assert.ok(probeSummary({ audio: { codec: "PCMU", name: "G.711 µ-law", supported: true } }).found
    .endsWith("audio G.711 µ-law"));
});

test("the recording's gaps and skipped frames in words, a note when there are any", () => {
  assert.equal(recordingText(null), null);
  assert.deepEqual(recordingText({ gaps: 0, frames_skipped: 0, segments: 3, active: true }), {
    text: "Recording now: 0 gaps and 0 frames skipped since the service started (3 segments written)",
    note: false });
  const gapped = recordingText({ gaps: 1, frames_skipped: 1, segments: 1, active: false });
  assert.equal(gapped.text, "Not recording now: 1 gap and 1 frame skipped since the service started "
    + "(1 segment written)");
  assert.equal(gapped.note, true);
});

test("the diagnostics page's camera comes from /cameras/ID/diagnostics or the former ?camera=ID", () => {
  assert.equal(cameraOf({ pathname: "/cameras/door/diagnostics", search: "" }), "door");
  assert.equal(cameraOf({ pathname: "/static/diagnostics.html", search: "?camera=gate" }), "gate");
  assert.equal(cameraOf({ pathname: "/static/diagnostics.html", search: "" }), "");
});
