// Parsing the live WebSocket protocol (see opticlink/live/protocol.py for the layout).

export const FLAGS = { keyframe: 1, discontinuity: 2, reanchored: 4 };
const decoder = new TextDecoder();

export function parseConfig(bytes) {
  return JSON.parse(decoder.decode(bytes.subarray(1)));
}

/** A frame message: track, flags, pts (µs), wall (µs since the Unix epoch, 0 if unknown), payload. */
export function parseFrame(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    track: bytes[1],
    flags: bytes[2],
    pts: view.getFloat64(8, true),
    wall: view.getFloat64(16, true),
    payload: bytes.subarray(24),
  };
}

export function base64Bytes(text) {
  if (!text) return new Uint8Array(0);
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
