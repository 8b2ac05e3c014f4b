// The camera settings form's core: what each input asks the server for, and its refusals as sentences.
import assert from "node:assert/strict";
import { test } from "node:test";

import { changeOf, refusalText } from "../../src/opticlink/web/settings.js";

test("a checkbox asks for its setting, the offset for a number within the bounds", () => {
  assert.deepEqual(changeOf("live_audio", false), { change: { live_audio: false } });
  assert.deepEqual(changeOf("audio_offset_ms", "-120"), { change: { audio_offset_ms: -120 } });
  assert.deepEqual(changeOf("audio_offset_ms", "2000"), { change: { audio_offset_ms: 2000 } });
  assert.match(changeOf("audio_offset_ms", "2001").error, /at most ±2000 ms/);
  assert.match(changeOf("audio_offset_ms", "").error, /number/);
  assert.match(changeOf("audio_offset_ms", "abc").error, /number/);
});

test("the server's refusals read as sentences", () => {
  assert.equal(refusalText(403, { detail: "admins only" }), "admins only");
  assert.equal(refusalText(422, { detail: [{ msg: "Input should be less than or equal to 2000" }] }),
               "Input should be less than or equal to 2000");
  assert.equal(refusalText(502, null), "the server answered 502");
});
