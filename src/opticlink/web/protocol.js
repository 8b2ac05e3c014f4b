// Parsing the live WebSocket protocol (see opticlink/live/protocol.py for the layout).

export const FLAGS = { keyframe: 1, discontinuity: 2, reanchored: 4, nonReference: 8 };
const decoder = new TextDecoder();

export function parseConfig(bytes) {
  return JSON.parse(decoder.decode(bytes.subarray(1)));
}

/** A frame message: track, flags, sent (the server's send time, 10 µs units modulo 2^32, 0 if
 *  unknown: see `deliveryUs`), pts (µs), wall (µs since the Unix epoch, 0 if unknown), payload. */
export function parseFrame(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    track: bytes[1],
    flags: bytes[2],
    sent: view.getUint32(4, true),
    pts: view.getFloat64(8, true),
    wall: view.getFloat64(16, true),
    payload: bytes.subarray(24),
  };
}

/** How long ago (µs) the server sent a frame stamped `sent`, received at `unixMs` on this page's
 *  clock (performance.timeOrigin + performance.now()); null when the server did not stamp it. The
 *  signed 32-bit difference survives the stamp's wrap; a constant offset between the two machines'
 *  clocks does not matter to the jitter taken from it. */
export function deliveryUs(sent, unixMs) {
  if (sent === 0) return null;
  return (((Math.floor(unixMs * 100) % 4294967296) - sent) | 0) * 10;
}

export function base64Bytes(text) {
  if (!text) return new Uint8Array(0);
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
