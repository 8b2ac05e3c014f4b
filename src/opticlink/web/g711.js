// G.711 decoding (ITU-T G.711): 256-entry tables from code to a sample in [-1, 1).

function ulaw(code) {
  const u = ~code & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return ((u & 0x80) ? 0x84 - t : t - 0x84) / 32768;
}

function alaw(code) {
  const a = code ^ 0x55;
  let t = (a & 0x0f) << 4;
  const segment = (a & 0x70) >> 4;
  if (segment === 0) t += 8;
  else if (segment === 1) t += 0x108;
  else t = (t + 0x108) << (segment - 1);
  return ((a & 0x80) ? t : -t) / 32768;
}

export const ULAW = Float32Array.from({ length: 256 }, (_, i) => ulaw(i));
export const ALAW = Float32Array.from({ length: 256 }, (_, i) => alaw(i));

/** Decode G.711 bytes into `out` (Float32Array) with the table for `codec` ("pcmu" or "pcma"). */
export function decodeG711(bytes, codec, out = new Float32Array(bytes.length)) {
  const table = codec === "pcma" ? ALAW : ULAW;
  for (let i = 0; i < bytes.length; i++) out[i] = table[bytes[i]];
  return out;
}
