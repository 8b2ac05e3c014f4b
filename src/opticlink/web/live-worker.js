// The player's Worker: network, decoding, audio feeding, and video presentation on the audio clock.
//
// It owns the WebSocket, a WebCodecs VideoDecoder drawing to an OffscreenCanvas, and (for AAC) an
// AudioDecoder. Audio goes into the ring the AudioWorklet plays from; the worklet's playhead,
// less the context's output latency, is the master clock. A video frame is shown when the clock
// reaches its time at the moment the drawing reaches the screen (one display interval after the
// animation frame it is drawn in); a frame more than one frame period late is dropped; when video
// falls more than 200 ms behind, the decode backlog is flushed and decoding resumes at the next
// keyframe.
// The sound's buffer (its target, the warm-up, rate trims and skips) is latency.js's. Its lateness
// estimate is split by the server's send time in each frame's header: `networkJitterMs` (camera to
// server, as the server's sync engine placed the frame) and `deliveryJitterMs` (server to this
// Worker: the send path, the socket, and the browser's own scheduling of this thread); `jitterMs`
// is the whole, which the target covers.
//
// Playback of a recording (init with `playback: true`, the URL of /api/cameras/ID/playback) is the
// same stream: the server paces recorded frames in real time on a session clock, so all of the above
// holds as it is. What playback adds: a `reset` text message before the frames of each seek (the
// decoder and the audio restart; what decodes before the reset's `pts` is the way to it and is not
// shown; the frame at `pts` is drawn at once, paused or not), `playback` (playing, paused, ended:
// the sound stops without an underrun) and `position` messages, passed on to the page; the page's
// `control` messages go to the server. A frame header's capture time is the recorded wall time: the
// stats carry the one of the frame on screen (`wall`, Unix seconds, shown at `wallAt`, epoch ms) instead
// of a latency, and `cursor`: the recorded wall time the presentation clock stands at (group-clock.js).
// Synchronized playback: a `follow` message carries the group leader's cursor (null: follow none);
// a follower presents its video by its own clock plus an offset that slews it to the leader's
// (group-clock.js's Follower: rate trims, drop/repeat of pictures; never a seek). So that a follower
// has its pictures in time, every playback asks the server for its frames PLAYBACK_LEAD_S early.
import { parseConfig, parseFrame, FLAGS, base64Bytes, deliveryUs } from "./protocol.js";
import { CONTROL, FORMATS, SampleRing } from "./ring.js";
import { focus, focusMessage, mutedAudio, unseenVideo } from "./worker-focus.js";
import { Arrivals, AudioLatency, LATENCY } from "./latency.js";
import { DisplayTiming, PlayheadFit } from "./clock.js";
import { choose, fallenBehind, framePeriod, leaveUndecoded } from "./frames.js";
import { cursorAt, Follower, leadFor, PLAYBACK_LEAD_S, WallMap } from "./group-clock.js";

const NO_AUDIO_MARGIN_MS = 40;
const NOT_YET = 1 << 30; // a start level the ring never reaches

const state = {
  url: null, socket: null, canvas: null, ctx2d: null, ring: null, port: null, portControl: null,
  outputLatency: 0, contextRate: 48000, retry: 0, closed: false,
  config: null, video: null, audio: null,
  arrivals: null, // a live stream's audio lateness, heard or muted (liveArrivals)
  frames: [], wallOf: new Map(), waitingKey: true, lateAt: -Infinity, drawnAt: -Infinity, period: 40000, noAudioLag: null, underrunsTimed: 0,
  stats: null, reports: 0,
  hardware: "no-preference",
  playback: null, // { posterPts, wall, inbox, busy, state, speed, walls, lead, follower, offset, resetAt } when playing a recording
  talk: { requested: false, granted: false, port: null, inputLatency: 0, sequence: 0, sent: 0, dropped: 0,
          captureMs: [] },
};

function newStats() {
  return {
    framesReceived: 0, framesDecoded: 0, framesShown: 0, framesDropped: 0, framesSkipped: 0, lateDropped: 0, flushes: 0,
    audioFrames: 0, audioMuted: 0, underruns: 0, skips: 0, bufferMs: 0, targetBufferMs: LATENCY.floorMs, trimPercent: 0, jitterMs: 0,
    avOffsetMs: null, avOffsetP99Ms: null, latencyMs: null, latencyP50Ms: null, latencyP95Ms: null,
    clock: "none", videoCodec: null, audioCodec: null, connected: false, message: null, bytes: 0,
    videoArrivalMs: null, audioArrivalMs: null, outputLatencyMs: 0, displayIntervalMs: null, underrunTimes: [],
    presentation: "canvas", audioTransport: null, wall: null,
  };
}
state.stats = newStats();
const avOffsets = [];
const latencies = [];
const fresh = { avOffsets: [], latencies: [] }; // since the last report, for the element's samples

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === "init") {
    state.url = message.url;
    state.canvas = message.canvas;
    state.ctx2d = state.canvas.getContext("2d", { alpha: false, desynchronized: true });
    state.contextRate = message.contextRate;
    state.outputLatency = message.outputLatency || 0;
    if (message.ring) state.ring = SampleRing.from(message.ring.data, message.ring.control);
    state.stats.audioTransport = state.ring ? "shared ring" : "message port";
    if (message.playback) {
      state.playback = { posterPts: null, wall: null, inbox: [], busy: false, state: "paused", speed: 1,
                         walls: new WallMap(), lead: null, follower: new Follower(), offset: 0, resetAt: 0,
                         leadS: PLAYBACK_LEAD_S, leadAskedAt: 0 };
    }
    if (message.port) {
      state.port = message.port;
      state.portControl = new Int32Array(CONTROL.SIZE);
      state.port.onmessage = (e) => { if (e.data.type === "state") state.portControl.set(e.data.control); };
    }
    connect();
    schedule();
    setInterval(report, 500);
    if (state.playback) setInterval(tellCursor, CURSOR_EVERY_MS);
    setInterval(controlLatency, 100);
  } else if (message.type === "latency") {
    state.outputLatency = message.outputLatency || 0;
  } else if (message.type === "talk") {
    talkControl(message.action);
  } else if (message.type === "talk-port") {
    state.talk.port = message.port;
    state.talk.inputLatency = message.inputLatency || 0;
    message.port.onmessage = (e) => sendTalkFrame(e.data);
  } else if (message.type === "follow") { // synchronized playback: the leader's cursor, or null
    const playback = state.playback;
    if (!playback) return;
    if (!message.cursor && playback.lead) {
      playback.offset = 0;
      playback.follower = new Follower();
    }
    playback.lead = message.cursor || null;
  } else if (message.type === "control") { // playback: play, pause, seek, speed
    if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message.control));
  } else if (message.type === "audible" || message.type === "visible" || message.type === "size") { // the wall
    focusMessage(message, state, { setupAudio, setCtl, ctl });
  } else if (message.type === "close") {
    state.closed = true;
    if (state.socket) state.socket.close();
  }
};

// Audio sink: the shared ring, or the MessagePort fallback ------------------------------------

function ctl(field) {
  if (state.ring) return state.ring.get(field);
  return state.portControl ? state.portControl[field] : 0;
}

function setCtl(field, value) {
  if (state.ring) state.ring.set(field, value);
  else if (state.port) state.port.postMessage({ type: "control", field, value: value | 0 });
}

function writeSamples(samples) {
  if (state.ring) return state.ring.write(samples);
  const copy = samples.slice();
  state.port.postMessage({ type: "samples", samples: copy }, [copy.buffer]);
  return samples.length;
}

function writeSilence(count, value) {
  if (state.ring) return state.ring.writeSilence(count, value);
  state.port.postMessage({ type: "silence", count, value });
  return count;
}

function buffered() {
  return ((ctl(CONTROL.WRITE) - ctl(CONTROL.READ)) | 0);
}

// Network --------------------------------------------------------------------------------------

const REFUSED = new Set([4400, 4401, 4403, 4404]); // access control; 4400: a playback asked for wrongly

function connect() {
  if (state.closed) return;
  let url = state.url;
  if (state.playback?.wall) { // reconnecting: carry on where the playback was
    const again = new URL(url);
    again.searchParams.set("start", String(state.playback.wall));
    url = again.href;
  }
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  socket.onopen = () => {
    state.stats.connected = true;
    state.retry = 0;
    if (state.playback) socket.send(JSON.stringify({ action: "lead", value: state.playback.leadS })); // group-clock.js
  };
  socket.onmessage = (event) => {
    const playback = state.playback;
    if (playback && (playback.busy || playback.inbox.length)) { // in order, after the decoder is configured
      if (playback.inbox.length >= MAX_INBOX) playback.inbox.length = 0;
      playback.inbox.push(event.data);
    } else {
      receive(event.data);
    }
  };
  socket.onclose = (event) => {
    state.stats.connected = false;
    if (state.talk.granted || state.talk.requested) {
      state.talk.granted = state.talk.requested = false;
      self.postMessage({ type: "talk", state: "error", reason: "the connection to the server was lost" });
    }
    if (state.closed) return;
    if (REFUSED.has(event.code)) { // not logged in (any more), not allowed, no such camera: trying again will not help
      state.closed = true;
      state.stats.message = event.reason || "the server refused this camera";
      self.postMessage({ type: "refused", code: event.code, reason: state.stats.message });
      return;
    }
    state.retry = Math.min(5000, state.retry * 2 || 250);
    setTimeout(connect, state.retry);
  };
}

const MAX_INBOX = 4096; // playback messages held while a configuration is applied

function receive(data) {
  if (typeof data === "string") onText(data);
  else onMessage(new Uint8Array(data));
}

function onMessage(bytes) {
  state.stats.bytes += bytes.length;
  if (bytes[0] === 1) {
    const configured = configure(parseConfig(bytes));
    const playback = state.playback;
    if (playback) { // a seek's frames follow its configuration at once: none may reach an unready decoder
      playback.busy = true;
      configured.catch(() => {}).finally(() => {
        playback.busy = false;
        while (!playback.busy && playback.inbox.length) receive(playback.inbox.shift());
      });
    }
    return configured;
  }
  if (bytes[0] !== 2 || !state.config) return;
  const frame = parseFrame(bytes);
  const track = state.config.byTrack.get(frame.track);
  if (!track) return;
  if (track.kind === "video") onVideo(frame);
  else onAudio(frame, track);
}

// Talk -------------------------------------------------------------------------------------------
// The page asks to start or stop; the server answers (granted, busy, unavailable, stopped, error)
// and tells everyone who is talking. Microphone frames from the capture worklet go out only while
// talk is granted, each with its capture time on the wall clock.

function talkControl(action) {
  state.talk.requested = action === "start";
  if (action === "stop") state.talk.granted = false;
  const socket = state.socket;
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "talk", action }));
  } else if (action === "start") {
    state.talk.requested = false;
    self.postMessage({ type: "talk", state: "error", reason: "not connected to the server" });
  }
}

function onText(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  if (state.playback && ["reset", "playback", "position", "error"].includes(message.type)) {
    return onPlayback(message);
  }
  if (message.type !== "talk") return;
  if (message.state === "granted") {
    state.talk.granted = state.talk.requested;
    if (!state.talk.granted) talkControl("stop"); // let go before the answer came
  } else if (message.state) {
    state.talk.granted = state.talk.requested = false;
  }
  self.postMessage(message);
}

// Playback ----------------------------------------------------------------------------------------

function onPlayback(message) {
  const playback = state.playback;
  if (message.type === "reset") {
    for (const frame of state.frames) frame.close();
    state.frames.length = 0;
    const decoder = state.video?.decoder;
    if (decoder && decoder.state === "configured") {
      decoder.reset();
      decoder.configure(state.video.config);
    }
    state.waitingKey = true;
    state.noAudioLag = null;
    state.wallOf.clear();
    playback.walls.clear();
    playback.follower.reset();
    playback.resetAt = performance.timeOrigin + performance.now(); // a leader's cursor from before is not followed
    state.stats.cursor = null;
    state.audio?.latency.resetVideo();
    playback.posterPts = message.pts;
    quietAudio();
  } else if (message.type === "playback" && message.state !== "playing") {
    quietAudio();
    const decoder = state.video?.decoder;
    if (decoder && decoder.state === "configured") { // the picture asked for may still be in the decoder
      decoder.flush().catch(() => {});
      state.waitingKey = true; // after a flush; the server restarts at a keyframe on play anyway
    }
  }
  if ("wall" in message && message.wall) playback.wall = message.wall;
  if ((message.type === "reset" || message.type === "playback") && message.state) playback.state = message.state;
  if ((message.type === "reset" || message.type === "playback") && message.speed) playback.speed = message.speed;
  if (state.stats.cursor) state.stats.cursor.playing = playback.state === "playing"; // a paused leader is not run on
  self.postMessage({ type: "playback", message });
}

const CURSOR_EVERY_MS = 100; // a leader's cursor to the page: a follower hears of a stall of it within this

/** The cursor to the page, with the picture on screen (`shown`: recorded at `wall` Unix s, up since `at`
 *  epoch ms): what the group's players show at one moment can be compared ten times a second, not
 *  only in the stats twice a second. */
function tellCursor() {
  const cursor = state.stats.cursor;
  if (!cursor) return;
  const shown = state.stats.wall ? { wall: state.stats.wall, at: state.stats.wallAt } : null;
  self.postMessage({ type: "cursor", cursor: { ...cursor, shown } });
}

/** Stop the sound at once (a pause, a seek, the end), without an underrun: it restarts as a new stream. */
function quietAudio() {
  const audio = state.audio;
  if (!audio) return;
  if (audio.decoder && audio.decoder.state !== "closed") audio.decoder.close();
  const track = state.config?.tracks.find((t) => t.kind === "audio");
  if (!track) { state.audio = null; return; }
  const waiting = buffered();
  setupAudio(track); // START_AT never, a new generation: the worklet stops before it runs dry
  setCtl(CONTROL.STATE, 0);
  if (waiting > 0) setCtl(CONTROL.SKIP, waiting);
}

/** A decoded frame of a playback reset: the way to the asked-for picture is dropped, that picture shown. */
function posterFrame(frame) {
  const playback = state.playback;
  if (frame.timestamp < playback.posterPts - 500) { frame.close(); return true; }
  playback.posterPts = null;
  const wall = state.wallOf.get(Math.round(frame.timestamp));
  if (wall) { state.stats.wall = wall / 1e6; state.stats.wallAt = performance.timeOrigin + performance.now(); }
  draw(frame);
  state.stats.framesShown++;
  return true;
}

const TALK_HEADER = 24;

function sendTalkFrame(frame) {
  const socket = state.socket;
  if (frame.type !== "frame" || !state.talk.granted || !socket || socket.readyState !== WebSocket.OPEN) return;
  const now = Date.now();
  // the frame was complete at context time `complete`, which is about now
  const capturedMs = now - (frame.complete - frame.captured) * 1000 - state.talk.inputLatency * 1000;
  const bytes = new Uint8Array(TALK_HEADER + frame.pcm.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, 3);
  view.setUint8(1, 0);
  view.setUint16(2, state.talk.sequence++ & 0xffff, true);
  view.setUint32(4, frame.rate, true);
  view.setFloat64(8, capturedMs * 1000, true);
  view.setFloat64(16, now * 1000, true);
  const pcm = new Int16Array(frame.pcm.buffer, frame.pcm.byteOffset, frame.pcm.length);
  for (let i = 0; i < pcm.length; i++) view.setInt16(TALK_HEADER + 2 * i, pcm[i], true);
  if (socket.bufferedAmount > 64 * 1024) { state.talk.dropped++; return; } // a stalled uplink: stay current
  socket.send(bytes);
  state.talk.sent++;
  state.talk.captureMs.push(now - capturedMs);
  if (state.talk.captureMs.length > 500) state.talk.captureMs.shift();
}

// Configuration ------------------------------------------------------------------------------------

async function configure(config) {
  const byTrack = new Map(config.tracks.map((t) => [t.track, t]));
  const previous = state.config;
  state.config = { ...config, byTrack };
  const video = config.tracks.find((t) => t.kind === "video");
  const audio = config.tracks.find((t) => t.kind === "audio");
  if (video && (!previous || videoKey(previous) !== videoKey(state.config))) await setupVideo(video);
  if (audio && (!state.audio || state.audio.codec !== audio.codec || state.audio.rate !== audio.sampleRate)) {
    setupAudio(audio);
  }
  if (!audio) { state.audio = null; state.stats.audioCodec = null; }
}

function videoKey(config) {
  const v = config.tracks.find((t) => t.kind === "video");
  return v ? `${v.codec}|${v.description}` : "";
}

async function setupVideo(track) {
  state.stats.videoCodec = track.codec;
  if (state.video?.decoder && state.video.decoder.state !== "closed") state.video.decoder.close();
  const config = { codec: track.codec, optimizeForLatency: true, hardwareAcceleration: state.hardware };
  if (track.description) config.description = base64Bytes(track.description);
  let support;
  try {
    support = await VideoDecoder.isConfigSupported(config);
  } catch {
    support = { supported: false };
  }
  if (!support.supported) {
    const name = track.codec.startsWith("hvc1") || track.codec.startsWith("hev1") ? "H.265 (HEVC)" : track.codec;
    state.stats.message = `This browser cannot decode ${name} video; audio still plays.`;
    state.video = null;
    return;
  }
  const decoder = new VideoDecoder({
    output: (frame) => {
      state.stats.framesDecoded++;
      if (state.playback?.posterPts != null && posterFrame(frame)) return;
      const audio = state.audio;
      if (audio) audio.latency.decoded(performance.now() * 1000, frame.timestamp);
      state.frames.push(frame);
    },
    error: (error) => {
      state.stats.message = `video decoder: ${error.message}`;
      state.waitingKey = true;
      setTimeout(() => setupVideo(track), 0);
    },
  });
  decoder.configure(config);
  state.video = { decoder, config };
  state.waitingKey = true;
}

function setupAudio(track) {
  state.stats.audioCodec = track.codec;
  const audio = { codec: track.codec, rate: track.sampleRate, channels: track.channels || 1, nextPts: null,
                  anchors: [], written: ctl(CONTROL.WRITE), fit: new PlayheadFit(track.sampleRate), decoder: null, silence: 0,
                  latency: new AudioLatency({ playback: Boolean(state.playback), arrivals: liveArrivals() }), pushed: 0 };
  let format = FORMATS.float;
  if (track.codec === "pcmu") { format = FORMATS.pcmu; audio.silence = 0xff; }
  else if (track.codec === "pcma") { format = FORMATS.pcma; audio.silence = 0xd5; }
  else if (track.codec.startsWith("mp4a")) {
    audio.decoder = new AudioDecoder({
      output: (data) => {
        const samples = new Float32Array(data.numberOfFrames);
        data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
        const pts = data.timestamp;
        data.close();
        pushAudio(samples, pts);
      },
      error: (error) => { state.stats.message = `audio decoder: ${error.message}`; },
    });
    audio.decoder.configure({ codec: track.codec, sampleRate: track.sampleRate, numberOfChannels: audio.channels,
                              description: base64Bytes(track.description) });
  }
  state.audio = audio;
  setCtl(CONTROL.FORMAT, format);
  setCtl(CONTROL.RATE, track.sampleRate);
  setCtl(CONTROL.START_AT, NOT_YET);
  setCtl(CONTROL.TRIM_PPM, 0);
  setCtl(CONTROL.GENERATION, ctl(CONTROL.GENERATION) + 1);
  audio.written = ctl(CONTROL.WRITE);
}

// Audio --------------------------------------------------------------------------------------------

/** A live stream's audio lateness, kept while the player is muted and carried into its next sound
 *  (latency.js Arrivals); null for a recording, whose every seek starts a new timeline. */
function liveArrivals() {
  if (state.playback) return null;
  state.arrivals ??= new Arrivals();
  return state.arrivals;
}

function onAudio(frame, track) {
  const now = performance.now();
  const delivery = deliveryUs(frame.sent, performance.timeOrigin + now);
  if (mutedAudio(state)) {
    liveArrivals()?.add(now * 1000, frame.pts, delivery);
    return;
  }
  const audio = state.audio;
  if (!audio) return;
  state.stats.audioFrames++;
  audio.latency.arrival(now * 1000, frame.pts, delivery);
  if (frame.wall > 0 && !state.playback) state.stats.audioArrivalMs = +(performance.timeOrigin + performance.now() - frame.wall / 1000).toFixed(1);
  if (audio.decoder) {
    audio.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: Math.round(frame.pts), data: frame.payload }));
  } else if (track.codec === "l16") {
    const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, frame.payload.byteLength);
    const channels = audio.channels;
    const samples = new Float32Array(Math.floor(frame.payload.byteLength / 2 / channels));
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2 * channels) / 32768;
    pushAudio(samples, frame.pts);
  } else {
    pushAudio(Float32Array.from(frame.payload), frame.pts); // G.711 codes; the worklet decodes them
  }
}

/** Append a frame's samples where its presentation time says, keeping lost audio as silence. */
function pushAudio(samples, pts) {
  const audio = state.audio;
  const rate = audio.rate;
  if (audio.nextPts !== null) {
    const gap = Math.round(((pts - audio.nextPts) / 1e6) * rate);
    if (gap > rate * 0.0025 && gap < rate * 2) {
      const n = writeSilence(gap, audio.silence);
      audio.written += n;
    } else if (gap < -rate * 0.0025) {
      if (-gap >= samples.length || gap < -rate * 2) {
        if (gap < -rate * 2) audio.nextPts = null; // the timeline restarted
        else return;
      } else {
        samples = samples.subarray(-gap);
        pts -= (gap / rate) * 1e6;
      }
    }
  }
  audio.latency.packet((samples.length / rate) * 1000);
  if (audio.pushed++ === 0) setStartLevel(audio); // the first packet tells its duration: start with room for it
  audio.anchors.push([audio.written, pts]);
  if (audio.anchors.length > 512) audio.anchors.splice(0, 256);
  audio.written += writeSamples(samples);
  audio.nextPts = pts + (samples.length / rate) * 1e6;
}

/** The presentation time of the sound leaving the speaker now, or null before audio plays. */
function audioClock() {
  const audio = state.audio;
  if (!audio || ctl(CONTROL.STATE) !== 1 || audio.anchors.length === 0) return null;
  const smoothed = audio.fit.at(performance.now(), ctl(CONTROL.PLAYHEAD));
  const playhead = Math.round(smoothed);
  const anchors = audio.anchors;
  let lo = 0, hi = anchors.length - 1;
  if (((playhead - anchors[0][0]) | 0) < 0) return null;
  while (lo < hi) { // last anchor at or before the playhead
    const mid = (lo + hi + 1) >> 1;
    if (((anchors[mid][0] - playhead) | 0) <= 0) lo = mid; else hi = mid - 1;
  }
  const [index, pts] = anchors[lo];
  return pts + (((((playhead - index) | 0) + (smoothed - playhead)) / audio.rate) * 1e6) - state.outputLatency * 1e6;
}

function setStartLevel(audio) {
  const level = audio.latency.startLevel();
  setCtl(CONTROL.START_AT, level === null ? NOT_YET : Math.round((level / 1000) * audio.rate));
}

function controlLatency() {
  const audio = state.audio;
  if (!audio) return;
  const bufferMs = (buffered() / audio.rate) * 1000;
  const underruns = ctl(CONTROL.UNDERRUNS);
  const latency = audio.latency;
  const playing = ctl(CONTROL.STATE) === 1;
  const { skipMs, trim } = latency.control(performance.now() * 1000, { bufferMs, playing, underruns });
  if (skipMs > 0) {
    setCtl(CONTROL.SKIP, Math.round((skipMs / 1000) * audio.rate));
    if (playing) state.stats.skips++; // heard: crossfaded by the worklet
  }
  setStartLevel(audio);
  setCtl(CONTROL.TRIM_PPM, Math.round(trim * 1e6));
  const { networkMs, deliveryMs } = latency.jitterParts();
  Object.assign(state.stats, { bufferMs: +bufferMs.toFixed(1), targetBufferMs: +latency.target().toFixed(1),
                               jitterMs: +latency.jitterMs().toFixed(2), networkJitterMs: +networkMs.toFixed(2),
                               deliveryJitterMs: +deliveryMs.toFixed(2), trimPercent: +(trim * 100).toFixed(3),
                               underruns });
}

// Video --------------------------------------------------------------------------------------------

function onVideo(frame) {
  if (unseenVideo(state)) return;
  state.stats.framesReceived++;
  if (!state.video) return;
  const key = (frame.flags & FLAGS.keyframe) !== 0;
  if (state.waitingKey && !key) return;
  state.waitingKey = false;
  if (leaveUndecoded({ key, nonReference: (frame.flags & FLAGS.nonReference) !== 0, keyframesOnly: focus.keyframesOnly,
                       decodeQueue: state.video.decoder.decodeQueueSize, sinceLateMs: performance.now() - state.lateAt })) {
    state.stats.framesSkipped++;
    return;
  }
  if (frame.wall > 0) {
    state.wallOf.set(Math.round(frame.pts), frame.wall);
    state.playback?.walls.add(Math.round(frame.pts), frame.wall);
    if (!state.playback) state.stats.videoArrivalMs = +(performance.timeOrigin + performance.now() - frame.wall / 1000).toFixed(1);
  }
  if (state.wallOf.size > 300) state.wallOf.delete(state.wallOf.keys().next().value);
  if (state.noAudioLag === null || performance.now() * 1000 - frame.pts < state.noAudioLag) {
    state.noAudioLag = performance.now() * 1000 - frame.pts;
  }
  try {
    state.video.decoder.decode(new EncodedVideoChunk({ type: key ? "key" : "delta", timestamp: Math.round(frame.pts),
                                                       data: frame.payload }));
  } catch (error) {
    state.stats.message = `video: ${error.message}`;
    state.waitingKey = true;
  }
}

function videoClock() {
  const clock = audioClock();
  if (clock !== null) { state.stats.clock = "audio"; return clock; }
  if (state.audio) { state.stats.clock = "waiting for audio"; return null; }
  if (state.noAudioLag === null) return null;
  state.stats.clock = "wall";
  return performance.now() * 1000 - state.noAudioLag - NO_AUDIO_MARGIN_MS * 1000;
}

// When what is drawn reaches the screen (clock.js): a frame is chosen for, and its A/V offset and
// latency are measured at, the audio clock of that moment, not of the draw.
const DISPLAY = new DisplayTiming();

/** Choose, drop or draw video for the animation frame that began at `begin` (µs, performance time). */
function present(begin) {
  const now = performance.now() * 1000;
  begin = Math.min(begin, now);
  DISPLAY.frame(begin);
  const frames = state.frames;
  if (frames.length === 0) return;
  const clockNow = videoClock();
  if (clockNow === null) return;
  const shownAt = begin + DISPLAY.interval; // when what is drawn now is on screen
  let clock = clockNow + (shownAt - now); // the presentation time then
  if (state.playback) clock = groupClock(clock, shownAt);
  frames.sort((a, b) => a.timestamp - b.timestamp);
  state.period = framePeriod(frames, state.period);
  if (state.video && fallenBehind(frames, clock, state.video.decoder.decodeQueueSize)) {
    // decoding has fallen far behind the clock: drop the backlog and start again at the next keyframe
    for (const f of frames) f.close();
    state.stats.framesDropped += frames.length;
    frames.length = 0;
    state.stats.flushes++;
    state.video.decoder.reset();
    state.video.decoder.configure(state.video.config);
    state.waitingKey = true;
    return;
  }
  const { show, passed, late } = choose(frames, clock, DISPLAY.held, state.period, now - state.drawnAt);
  for (const frame of passed) frame.close();
  state.stats.framesDropped += passed.length;
  if (late) { // later than one frame period: not worth showing
    late.close();
    state.lateAt = performance.now();
    state.stats.lateDropped++;
    state.stats.framesDropped++;
  }
  if (!show) return;
  if (show.timestamp < clock - state.period) state.lateAt = performance.now(); // shown late: the screen stood still
  draw(show);
  state.drawnAt = now;
  state.stats.framesShown++;
  const offset = (show.timestamp - clock) / 1000;
  record(avOffsets, offset);
  fresh.avOffsets.push(offset);
  state.stats.avOffsetMs = +offset.toFixed(2);
  const wall = state.wallOf.get(Math.round(show.timestamp));
  if (wall && state.playback) {
    state.stats.wall = wall / 1e6; // what is on screen was recorded then
    state.stats.wallAt = performance.timeOrigin + shownAt / 1000;
  } else if (wall) {
    const latency = performance.timeOrigin + shownAt / 1000 - wall / 1000;
    record(latencies, latency);
    fresh.latencies.push(latency);
    state.stats.latencyMs = +latency.toFixed(1);
  }
}

/** Playback: the presentation clock `clock` (µs) for the picture on screen at `shownAt` (µs, performance
 *  time), moved to the group leader's when following one; publishes this player's cursor. */
function groupClock(clock, shownAt) {
  const playback = state.playback;
  const at = performance.timeOrigin + shownAt / 1000;
  const speed = playback.speed || 1;
  let follow = null; // why a follower does not follow now, for the stats
  if (playback.lead && playback.lead.at < playback.resetAt) follow = "waiting for the leader after a seek";
  else if (playback.lead) {
    const leader = cursorAt(playback.lead, at);
    const target = leader === null || playback.state !== "playing" ? null : playback.walls.ptsAt(leader * 1e6, speed);
    follow = target !== null ? "following" : leader === null ? "leader paused or not heard from" : playback.state;
    playback.offset = playback.follower.update(at, clock, target);
    clock += playback.offset;
    const lead = leadFor(playback.leadS, playback.offset);
    if (lead !== null && at - playback.leadAskedAt > 1000 && state.socket?.readyState === WebSocket.OPEN) {
      playback.leadS = lead; // its stream is behind the leader's: the server sends it earlier
      playback.leadAskedAt = at;
      state.socket.send(JSON.stringify({ action: "lead", value: lead }));
    }
  }
  const wall = playback.walls.wallAt(clock, speed);
  if (wall !== null) {
    state.stats.cursor = { wall: wall / 1e6, at, speed, playing: playback.state === "playing",
                           offsetMs: +(playback.lead ? playback.offset / 1000 : 0).toFixed(1), follow, leadS: playback.leadS,
                           steps: playback.follower.stepped };
  }
  return clock;
}

// Drawing a VideoFrame may need a graphics context that a Worker can only get through the page's
// main thread (Chromium without a GPU does this on every frame): a busy page would then stall this
// thread, and with it the sound. A draw that takes over 30 ms twice switches to converting the
// frame to RGBA here (libyuv, no GPU, no main thread) and putting the pixels.
const software = { on: false, slow: 0, rgba: null, image: null };

function draw(frame) {
  const canvas = state.canvas;
  const width = frame.displayWidth, height = frame.displayHeight;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  if (software.on) {
    if (!software.image || software.image.width !== width || software.image.height !== height) {
      software.rgba = new Uint8ClampedArray(width * height * 4);
      software.image = new ImageData(software.rgba, width, height);
    }
    frame.copyTo(software.rgba, { format: "RGBA" }).then(() => {
      frame.close();
      state.ctx2d.putImageData(software.image, 0, 0);
    }, () => frame.close());
    return;
  }
  const started = performance.now();
  state.ctx2d.drawImage(frame, 0, 0, width, height);
  frame.close();
  if (performance.now() - started > 30 && ++software.slow >= 2) {
    software.on = true;
    state.stats.presentation = "software";
  }
}

function record(list, value) {
  list.push(value);
  if (list.length > 3000) list.splice(0, 1000);
}

function percentile(list, p, abs = false) {
  if (list.length === 0) return null;
  const sorted = (abs ? list.map(Math.abs) : list.slice()).sort((a, b) => a - b);
  return +sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))].toFixed(2);
}

function schedule() {
  const tick = (begin) => {
    try { present((begin ?? performance.now()) * 1000); } catch (error) { state.stats.message = `present: ${error.message}`; }
    if (self.requestAnimationFrame) self.requestAnimationFrame(tick); else setTimeout(tick, 8);
  };
  tick();
}

// Every REPORT_EVERY stats (2 s) the live server hears how this player fares, for the camera's diagnostics
// page and metrics: its audio underruns since it connected and its latency p95 (glass to glass).
const REPORT_EVERY = 4;

function tellServer() {
  const socket = state.socket;
  if (state.playback || !socket || socket.readyState !== WebSocket.OPEN) return;
  const latency = state.stats.latencyP95Ms;  // null before any, and below 0 when this machine's clock is behind
  socket.send(JSON.stringify({ action: "report", underruns: state.stats.underruns,
                               latencyMs: latency !== null && latency >= 0 ? latency : null }));
}

function report() {
  state.stats.avOffsetP99Ms = percentile(avOffsets, 99, true);
  state.stats.latencyP50Ms = percentile(latencies, 50);
  state.stats.latencyP95Ms = percentile(latencies, 95);
  const underruns = ctl(CONTROL.UNDERRUNS);
  if (underruns > state.underrunsTimed) {  // when (seconds since the worklet started) the latest underran
    state.underrunsTimed = underruns;
    state.stats.underrunTimes.push(+((ctl(CONTROL.UNDERRUN_AT) * 128) / state.contextRate).toFixed(2));
    state.stats.underrunTimes = state.stats.underrunTimes.slice(-10);
  }
  state.stats.underruns = underruns;
  state.stats.outputLatencyMs = +(state.outputLatency * 1000).toFixed(1);
  state.stats.displayIntervalMs = +(DISPLAY.interval / 1000).toFixed(2);
  state.stats.talkFramesSent = state.talk.sent;
  state.stats.talkFramesDropped = state.talk.dropped;
  state.stats.talkCaptureP50Ms = percentile(state.talk.captureMs, 50);
  state.stats.talkCaptureP95Ms = percentile(state.talk.captureMs, 95);
  self.postMessage({ type: "stats", stats: { ...state.stats }, samples: fresh });
  if (++state.reports % REPORT_EVERY === 0) tellServer();
  fresh.avOffsets = [];
  fresh.latencies = [];
}
