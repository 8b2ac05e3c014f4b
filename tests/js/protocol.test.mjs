// The live protocol's frame header (protocol.js), as opticlink/live/protocol.py writes it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { deliveryUs, parseFrame } from "../../src/opticlink/web/protocol.js";

test("a frame's header gives its send stamp, times and payload", () => {
  const bytes = new Uint8Array(24 + 3);
  const view = new DataView(bytes.buffer);
  bytes.set([2, 1, 1]);
  view.setUint32(4, 4294967000, true);
  view.setFloat64(8, 123456, true);
  view.setFloat64(16, 1.795e15, true);
  bytes.set([7, 8, 9], 24);
  const frame = parseFrame(bytes);
  assert.deepEqual([frame.track, frame.flags, frame.sent, frame.pts, frame.wall], [1, 1, 4294967000, 123456, 1.795e15]);
  assert.deepEqual([...frame.payload], [7, 8, 9]);
});

test("the delivery delay survives the send stamp's wrap and is null without a stamp", () => {
  const sentMs = (41_800 * 2 ** 32 - 50) / 100; // 0.5 ms before the stamp wraps
  const sent = Math.floor(sentMs * 100) % 4294967296;
  assert.equal(deliveryUs(sent, sentMs + 2), 2000);
  assert.equal(deliveryUs(sent, sentMs - 1), -1000, "a page clock behind the server's: negative, not huge");
  assert.equal(deliveryUs(0, sentMs), null);
});
