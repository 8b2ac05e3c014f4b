// <opticlink-player camera="ID" [viewer="NAME"]>: a camera's live picture and sound, with the
// audio as the clock, and a talk button (hold to talk, or click to talk until clicked again).
// `playRecording(wall)` switches it to the camera's recording (the same Worker and worklet, fed by
// the playback WebSocket), `control({action})` plays, pauses, seeks and changes speed, `showLive()`
// goes back; a `playback` event carries the server's reset/playback/position messages.
// `follow(cursor)` slaves a playing recording to a group leader's cursor (its `cursor` events, ten a
// second; null: on its own again): its picture follows the leader's clock and its sound is muted meanwhile
// (group-clock.js).
// On a wall: `setAudible(false)` mutes it (its Worker then spends nothing on sound), `setVisible(false)`
// stops its video decoding (one narrower than 160 device pixels decodes keyframes only), `stream="sub"` asks for the camera's sub-stream (a change of stream keeps
// the old picture until the new one's first frame is shown), `notalk` hides the talk button, and the
// title says the state: connecting, live, no picture (with `cameraError`, the server's reason), error.
//
// The main thread only builds the element, starts the Worker (network, decoding, presentation on
// an OffscreenCanvas) and the AudioWorklet (decoding, resampling, playout), and shows stats: a
// busy page cannot make the sound stutter. The Worker and the worklet share a ring buffer
// (SharedArrayBuffer) when the page is cross-origin isolated, a MessagePort otherwise.
import { SampleRing } from "./ring.js";

const RING_CAPACITY = 1 << 16;
let sharedContext = null;
let workletReady = null;

/**
 * One AudioContext for the page, with the worklet module loaded once. The lowest latency hint is
 * the default (Chromium: about 11 ms to the speaker instead of 42 ms); a page may pass another.
 */
export async function audioContext(latencyHint = 0) {
  if (!sharedContext) {
    sharedContext = new AudioContext({ latencyHint });
    workletReady = sharedContext.audioWorklet.addModule(new URL("./audio-worklet.js", import.meta.url));
  }
  await workletReady;
  if (sharedContext.state !== "running") sharedContext.resume().catch(() => {});
  return sharedContext;
}

let captureReady = null;

/** The talk microphone's worklet module, loaded on the first talk. */
async function captureContext() {
  const context = await audioContext();
  if (!captureReady) captureReady = context.audioWorklet.addModule(new URL("./audio-capture.js", import.meta.url));
  await captureReady;
  return context;
}

const HOLD_MS = 400; // pressed longer than this: push-to-talk (release stops); shorter: latched

const STYLE = `
  :host { display: block; position: relative; background: #000; aspect-ratio: 16 / 9; color: #eee;
          font: 12px/1.35 ui-monospace, monospace; overflow: hidden; }
  canvas { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; display: block; }
  .title { position: absolute; left: 8px; bottom: 6px; font: 600 13px system-ui, sans-serif;
           text-shadow: 0 1px 2px #000; }
  .state { margin-left: 8px; font-weight: 400; color: #bbb; }
  .state::before { content: "●"; margin-right: 4px; color: #888; }
  :host([state=live]) .state::before { color: #4caf50; }
  :host([state=offline]) .state::before, :host([state=error]) .state::before { color: #f44336; }
  :host([notalk]) .talk { display: none; }
  .stats { position: absolute; top: 6px; left: 6px; margin: 0; padding: 4px 6px; background: #000a;
           border-radius: 4px; white-space: pre; pointer-events: none; }
  .message { position: absolute; inset: auto 8px 28px 8px; color: #ffcf6e; text-shadow: 0 1px 2px #000; }
  :host([nostats]) .stats { display: none; }
  :host([playback]) .talk, :host([playback]) .talk-message { display: none; }
  .talk { position: absolute; right: 8px; bottom: 6px; display: flex; gap: 8px; align-items: center;
          font: 600 12px system-ui, sans-serif; text-shadow: 0 1px 2px #000; }
  .talk button { font: 600 13px system-ui, sans-serif; padding: 5px 12px; border-radius: 14px; border: 1px solid #888;
                 background: #222d; color: #eee; cursor: pointer; user-select: none; touch-action: none; }
  .talk button[data-state=requesting] { border-color: #d9a400; color: #ffcf6e; }
  .talk button[data-state=talking] { background: #b3261e; border-color: #ff8a80; color: #fff; }
  .talk button[disabled] { opacity: 0.5; cursor: not-allowed; }
  .meter { width: 60px; height: 6px; background: #0008; border-radius: 3px; overflow: hidden; visibility: hidden; }
  .meter i { display: block; height: 100%; width: 0; background: #4caf50; }
  :host([talking]) .meter { visibility: visible; }
  .talker { color: #ff8a80; }
  .talk-message { position: absolute; right: 8px; bottom: 34px; max-width: 70%; text-align: right; color: #ffcf6e;
                  font: 12px system-ui, sans-serif; text-shadow: 0 1px 2px #000; }
`;

export class OpticlinkPlayer extends HTMLElement {
  static observedAttributes = ["camera", "stream"];

  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML =
      `<style>${STYLE}</style><canvas></canvas><pre class="stats"></pre><div class="message"></div>` +
      `<div class="title"><span class="name"></span><span class="state"></span></div><div class="talk-message"></div>` +
      `<div class="talk"><span class="talker"></span><div class="meter"><i></i></div>` +
      `<button class="talk-button" title="Hold to talk; click to talk until you click again">Talk</button></div>`;
    this._stats = null;
    this.talk = { state: "idle", latched: false, pressed: false, pressedAt: 0, you: null, available: true,
                  reason: null, microphone: null, stream: null, source: null, node: null, level: 0 };
    const button = this.shadowRoot.querySelector(".talk-button");
    button.addEventListener("pointerdown", (event) => { event.preventDefault(); this.pressTalk(); });
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
      button.addEventListener(type, () => this.releaseTalk());
    }
    button.addEventListener("keydown", (event) => {
      if ((event.key === " " || event.key === "Enter") && !event.repeat) { event.preventDefault(); this.pressTalk(); }
    });
    button.addEventListener("keyup", (event) => { if (event.key === " " || event.key === "Enter") this.releaseTalk(); });
    this.pipe = null; // { worker, node, canvas, timer }: what plays now
    this.pending = null; // ... and what takes over once it shows a picture (a change of stream)
    this.token = 0; // bumped by stop(): a start still waiting for the AudioContext is dropped
    this.audible = true;
    this.visible = true;
    this.width = 0; // device pixels, from a ResizeObserver
    this.resized = null;
    this.cameraError = null; // why the server says the camera is not playing, from the page
    this.progress = { at: 0, count: -1 }; // when frames last came, for the state
    this.samples = { avOffsets: [], latencies: [] };
    this.recording = null; // { start, speed, paused } while playing a recording
    this.playback = null; // { state, speed, wall }: the latest the server said
    this.following = false; // slaved to a group leader's clock (synchronized playback): muted
  }

  /** Synchronized playback: follow the group leader's `cursor` (its `cursor` events), or null: play on
   *  this player's own clock again. A follower is muted while it follows. */
  follow(cursor) {
    const following = Boolean(cursor) && Boolean(this.recording);
    if (following !== this.following) {
      this.following = following;
      for (const pipe of [this.pipe, this.pending]) pipe?.worker.postMessage({ type: "audible", audible: this.heard });
    }
    this.pipe?.worker.postMessage({ type: "follow", cursor: following ? cursor : null });
  }

  /** Whether the sound plays: heard on the wall and not following another camera's clock. */
  get heard() { return this.audible && !this.following; }

  /** Play the camera's recording from `wall` (Unix seconds); paused: show that picture and hold. */
  playRecording(wall, { speed = 1, paused = false } = {}) {
    this.recording = { start: wall, speed, paused };
    this.playback = { state: paused ? "paused" : "playing", speed, wall };
    this.setAttribute("playback", "");
    this.stop();
    this.start();
  }

  /** Back to the live picture. */
  showLive() {
    if (!this.recording) return;
    this.recording = this.playback = null;
    this.following = false;
    this.removeAttribute("playback");
    this.stop();
    this.start();
  }

  /** A playback command: {action: "play" | "pause"}, {action: "seek", wall}, {action: "speed", value}. */
  control(command) {
    this.worker?.postMessage({ type: "control", control: command });
  }

  /** The Worker that plays now (talk, playback control go to it). */
  get worker() { return this.pipe?.worker ?? null; }

  /** Heard or muted: a muted player neither decodes nor plays sound, and its video follows the wall clock. */
  setAudible(audible) {
    if (this.audible === audible) return;
    this.audible = audible;
    this.pipe?.worker.postMessage({ type: "audible", audible: this.heard });
    this.pending?.worker.postMessage({ type: "audible", audible: this.heard });
  }

  /** Seen or not: a player not seen receives video but does not decode it (it resumes at a keyframe). */
  setVisible(visible) {
    if (this.visible === visible) return;
    this.visible = visible;
    this.pipe?.worker.postMessage({ type: "visible", visible });
    this.pending?.worker.postMessage({ type: "visible", visible });
  }

  /** The latest statistics from the Worker (frames, underruns, buffer, A/V offset, latency). */
  get stats() { return this._stats; }

  /** Every A/V offset at presentation and capture-to-presentation latency (ms) since the last call. */
  takeSamples() {
    const samples = this.samples;
    this.samples = { avOffsets: [], latencies: [] };
    return samples;
  }

  connectedCallback() {
    this.start();
    this.resized ??= new ResizeObserver(([entry]) => { // a tile too small to show motion decodes keyframes only
      this.width = Math.round(entry.contentRect.width * (globalThis.devicePixelRatio || 1));
      this.pipe?.worker.postMessage({ type: "size", width: this.width });
      this.pending?.worker.postMessage({ type: "size", width: this.width });
    });
    this.resized.observe(this);
  }

  disconnectedCallback() {
    this.resized?.disconnect();
    this.stop();
  }

  attributeChangedCallback(name, before, after) {
    if (!this.isConnected || before === after) return;
    if (name === "stream") { if (this.pipe && !this.recording) this.switchStream(); return; }
    if (before !== null) { this.stop(); this.start(); }
  }

  async start() {
    const camera = this.getAttribute("camera");
    if (!camera) return;
    this.shadowRoot.querySelector(".title .name").textContent = this.getAttribute("label") || camera;
    const token = this.token;
    const pipe = await this.open(camera);
    if (token !== this.token || this.pipe) return this.close(pipe); // stopped (or started again) meanwhile
    this.pipe = pipe;
    this.shadowRoot.querySelector("canvas").replaceWith(pipe.canvas);
  }

  /** Another stream of the same camera: the new one plays under the old picture until it shows its own. */
  async switchStream() {
    const token = this.token;
    this.drop(this.pending);
    this.pending = null;
    this.stopTalk(); // talk belongs to the old connection
    this.pipe?.worker.postMessage({ type: "audible", audible: false }); // one sound at a time
    const pipe = await this.open(this.getAttribute("camera"));
    if (token !== this.token || !this.pipe) return this.close(pipe);
    this.drop(this.pending); // a later switch got there first
    this.pending = pipe;
    this.pipe.canvas.before(pipe.canvas); // under the old one, which stays on top until the swap
  }

  /** The Worker, worklet and canvas of one connection. */
  async open(camera) {
    const context = await audioContext();
    const pipe = { worker: null, node: null, canvas: document.createElement("canvas"), timer: null };
    const ring = new SampleRing(RING_CAPACITY);
    const shared = ring.shared;
    pipe.node = new AudioWorkletNode(context, "opticlink-audio", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2],
      processorOptions: shared ? { data: ring.dataBuffer, control: ring.controlBuffer } : {},
    });
    pipe.node.connect(context.destination);
    pipe.worker = new Worker(new URL("./live-worker.js", import.meta.url), { type: "module" });
    const canvas = pipe.canvas.transferControlToOffscreen(); // a canvas is handed to one Worker only, once
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const viewer = this.getAttribute("viewer") || new URLSearchParams(location.search).get("name");
    const params = new URLSearchParams();
    if (viewer) params.set("name", viewer);
    if (this.getAttribute("stream") === "sub") params.set("stream", "sub");
    const query = params.size ? `?${params}` : "";
    let url = `${scheme}://${location.host}/api/cameras/${encodeURIComponent(camera)}/live${query}`;
    const recording = this.recording;
    if (recording) {
      url = `${scheme}://${location.host}/api/cameras/${encodeURIComponent(camera)}/playback?start=${recording.start}` +
        `&speed=${recording.speed}${recording.paused ? "&paused=1" : ""}`;
    }
    const init = { type: "init", url, playback: Boolean(recording),
                   canvas, contextRate: context.sampleRate, outputLatency: latencyOf(context) };
    const transfer = [canvas];
    if (shared) {
      init.ring = { data: ring.dataBuffer, control: ring.controlBuffer };
    } else {
      const channel = new MessageChannel();
      pipe.node.port.postMessage({ type: "port", port: channel.port2 }, [channel.port2]);
      init.port = channel.port1;
      transfer.push(channel.port1);
    }
    pipe.worker.postMessage(init, transfer);
    pipe.worker.postMessage({ type: "audible", audible: this.heard });
    pipe.worker.postMessage({ type: "visible", visible: this.visible });
    if (this.width) pipe.worker.postMessage({ type: "size", width: this.width });
    pipe.worker.onmessage = (event) => {
      if (pipe === this.pending && event.data.type === "stats" && event.data.stats.framesShown > 0) this.swap();
      if (pipe !== this.pipe) return; // a stream still starting: not heard from until it takes over
      if (event.data.type === "talk") return this.onTalk(event.data);
      if (event.data.type === "playback") return this.onPlayback(event.data.message);
      if (event.data.type === "cursor") return this.dispatchEvent(new CustomEvent("cursor", { detail: event.data.cursor }));
      if (event.data.type === "refused") { // 4401: the login ended; the page decides where to go
        this.shadowRoot.querySelector(".message").textContent = event.data.reason;
        this.setAttribute("state", "error");
        this.shadowRoot.querySelector(".state").textContent = "refused";
        return this.dispatchEvent(new CustomEvent("refused", { detail: event.data, bubbles: true, composed: true }));
      }
      if (event.data.type !== "stats") return;
      this.samples.avOffsets.push(...event.data.samples.avOffsets);
      this.samples.latencies.push(...event.data.samples.latencies);
      if (this.samples.avOffsets.length > 100000) this.takeSamples();
      this.show(event.data.stats);
    };
    pipe.timer = setInterval(() => pipe.worker.postMessage({ type: "latency", outputLatency: latencyOf(context) }), 1000);
    return pipe;
  }

  /** The new stream shows its picture: it takes over, the old one closes. */
  swap() {
    const old = this.pipe;
    this.pipe = this.pending;
    this.pending = null;
    this.pipe.worker.postMessage({ type: "audible", audible: this.heard });
    this.close(old);
    old?.canvas.remove();
  }

  close(pipe) {
    if (!pipe) return;
    clearInterval(pipe.timer);
    pipe.worker.postMessage({ type: "close" });
    pipe.worker.terminate();
    pipe.node.disconnect();
  }

  /** Close a pipe that never showed its picture, and its canvas. */
  drop(pipe) {
    this.close(pipe);
    pipe?.canvas.remove();
  }

  stop() {
    this.token++;
    this.stopTalk(false);
    this.close(this.pipe); // its canvas keeps the last picture until the next start replaces it
    this.drop(this.pending);
    this.pipe = this.pending = null;
  }

  /** What the playback server says: the state, the speed and the wall time of what plays. */
  onPlayback(message) {
    if (!this.recording) return;
    const playback = this.playback;
    if (message.type === "playback") Object.assign(playback, { state: message.state, speed: message.speed });
    if (message.type === "reset") Object.assign(playback, { state: message.state, speed: message.speed });
    if (message.wall) playback.wall = message.wall;
    if (message.type === "reset") this.playbackNote = "";
    if (message.type === "error" || message.type === "playback") this.playbackNote = message.reason || "";
    this.dispatchEvent(new CustomEvent("playback", { detail: message }));
  }

  // Talk -----------------------------------------------------------------------------------------

  /** The talk button went down: ask the server for the speaker and open the microphone meanwhile. */
  pressTalk() {
    const talk = this.talk;
    if (talk.state !== "idle") {  // a click while latched lets go
      if (talk.latched) this.stopTalk();
      return;
    }
    if (!talk.available) return this.talkMessage(talk.reason || "talk is unavailable for this camera");
    if (!this.worker) return;
    talk.pressed = true;
    talk.latched = false;
    talk.pressedAt = performance.now();
    this.setTalkState("requesting");
    this.talkMessage("");
    const attempt = talk.attempt = (talk.attempt || 0) + 1;
    talk.microphoneError = null;
    talk.microphone = openMicrophone();
    // a refused microphone is what the user can act on: it is said whichever answer comes first
    talk.microphone.catch((error) => {
      if (this.talk.attempt !== attempt) return;
      this.talk.microphoneError = error.message;
      if (this.talk.state !== "idle") this.stopTalk();
      this.talkMessage(error.message);
    });
    this.worker.postMessage({ type: "talk", action: "start" });
  }

  /** The button came up: a short press latches talk on, a long one (push-to-talk) ends it. */
  releaseTalk() {
    const talk = this.talk;
    if (!talk.pressed) return;
    talk.pressed = false;
    if (talk.state === "idle") return;
    if (performance.now() - talk.pressedAt < HOLD_MS) talk.latched = true;
    else this.stopTalk();
  }

  stopTalk(tell = true) {
    const talk = this.talk;
    if (talk.state !== "idle" && tell) this.worker?.postMessage({ type: "talk", action: "stop" });
    talk.latched = talk.pressed = false;
    this.setTalkState("idle");
    this.closeMicrophone();
  }

  /** What the server says: who we are, who talks, and the answers to our requests. */
  async onTalk(message) {
    const talk = this.talk;
    if ("you" in message) {
      talk.you = message.you;
      talk.available = message.available !== false;
      talk.reason = message.reason || null;
      this.shadowRoot.querySelector(".talk-button").disabled = !talk.available;
      this.shadowRoot.querySelector(".talk-button").title = talk.available ? "Hold to talk; click to talk until you click again"
        : talk.reason;
    }
    if ("talking" in message) {
      const name = message.talking;
      this.shadowRoot.querySelector(".talker").textContent =
        name === null ? "" : name === talk.you ? "you are talking" : `${name} is talking`;
      this.dispatchEvent(new CustomEvent("talking", { detail: { talker: name, you: talk.you } }));
    }
    if (!message.state) return;
    this.dispatchEvent(new CustomEvent("talk", { detail: message }));
    if (message.state === "granted") {
      if (talk.state !== "requesting") return;
      this.setTalkState("talking");
      try {
        await this.startCapture(await talk.microphone, captureRate(message));
      } catch (error) {
        if (talk.state !== "idle") { this.stopTalk(); this.talkMessage(error.message); }
      }
      return;
    }
    const reasons = {
      busy: () => `${message.talker} is talking: wait until they finish`,
      unavailable: () => `talk is unavailable: ${message.reason}`,
      error: () => `talk stopped: ${message.reason}`,
    };
    this.stopTalk(false);
    if (message.state === "error" && talk.microphoneError) return this.talkMessage(talk.microphoneError);
    if (reasons[message.state]) this.talkMessage(reasons[message.state]()); // "stopped" keeps what was said
  }

  async startCapture(stream, rate) {
    const talk = this.talk;
    if (talk.state !== "talking") return;
    const context = await captureContext();
    talk.stream = stream;
    talk.source = context.createMediaStreamSource(stream);
    talk.node = new AudioWorkletNode(context, "opticlink-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { rate, frameMs: 20 },
    });
    const channel = new MessageChannel();
    talk.node.port.postMessage({ type: "port", port: channel.port1 }, [channel.port1]);
    const settings = stream.getAudioTracks()[0]?.getSettings() || {};
    this.worker.postMessage({ type: "talk-port", port: channel.port2, inputLatency: settings.latency || 0 },
                            [channel.port2]);
    const meter = this.shadowRoot.querySelector(".meter i");
    talk.node.port.onmessage = (event) => {
      if (event.data.type !== "level") return;
      talk.level = event.data.peak;
      const db = 20 * Math.log10(Math.max(event.data.peak, 1e-5));
      meter.style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
      meter.style.background = db > -3 ? "#f44336" : db > -12 ? "#ffc107" : "#4caf50";
    };
    talk.source.connect(talk.node);
    talk.node.connect(context.destination); // silent: keeps the worklet pulled by the graph
  }

  closeMicrophone() {
    const talk = this.talk;
    talk.source?.disconnect();
    talk.node?.disconnect();
    if (talk.node) talk.node.port.onmessage = null;
    const pending = talk.microphone;
    talk.source = talk.node = talk.stream = talk.microphone = null;
    pending?.then((stream) => stream.getTracks().forEach((track) => track.stop()), () => {});
    this.shadowRoot.querySelector(".meter i").style.width = "0";
  }

  setTalkState(state) {
    this.talk.state = state;
    const button = this.shadowRoot.querySelector(".talk-button");
    button.dataset.state = state;
    button.textContent = state === "talking" ? "Talking…" : state === "requesting" ? "Connecting…" : "Talk";
    this.toggleAttribute("talking", state === "talking");
  }

  talkMessage(text) {
    this.shadowRoot.querySelector(".talk-message").textContent = text;
  }

  show(stats) {
    this._stats = stats;
    this.dispatchEvent(new CustomEvent("stats", { detail: stats }));
    const lines = [
      `video ${stats.videoCodec ?? "-"}  decoded ${stats.framesDecoded}  shown ${stats.framesShown}  dropped ${stats.framesDropped}` +
        `  skipped ${stats.framesSkipped ?? 0}${stats.keyframesOnly ? " (keyframes only)" : ""}`,
      `audio ${stats.audioCodec ?? "-"}  buffer ${stats.bufferMs} / ${stats.targetBufferMs} ms  underruns ${stats.underruns}` +
        `  trim ${stats.trimPercent}%`,
      `jitter ${fmt(stats.jitterMs)} ms: network ${fmt(stats.networkJitterMs)}, delivery to this page ${fmt(stats.deliveryJitterMs)}`,
      `clock ${stats.clock}  A/V at presentation ${fmt(stats.avOffsetMs)} ms (p99 ${fmt(stats.avOffsetP99Ms)})`,
      `latency ${fmt(stats.latencyMs)} ms (p50 ${fmt(stats.latencyP50Ms)}, p95 ${fmt(stats.latencyP95Ms)})`,
    ];
    if (stats.talkFramesSent) {
      lines.push(`talk sent ${stats.talkFramesSent}  dropped ${stats.talkFramesDropped}` +
                 `  capture p50 ${fmt(stats.talkCaptureP50Ms)} p95 ${fmt(stats.talkCaptureP95Ms)} ms`);
    }
    if (this.recording && stats.wall) {
      lines.push(`recorded ${new Date(stats.wall * 1000).toISOString()}` +
                 (this.following && stats.cursor ? `  following the group, offset ${stats.cursor.offsetMs} ms` : ""));
    }
    this.shadowRoot.querySelector(".stats").textContent = lines.join("\n");
    this.shadowRoot.querySelector(".message").textContent = stats.message || (this.recording && this.playbackNote) ||
      (stats.connected ? "" : "connecting…");
    this.showState(stats);
  }

  /** The title's state: connecting, live (frames came in the last 3 s), no picture (with the server's
   *  reason when the page knows it), or an error the player met. */
  showState(stats) {
    const count = stats.framesReceived + stats.audioFrames;
    const now = performance.now();
    if (count !== this.progress.count) this.progress = { at: now, count };
    let state = "connecting", text = "connecting";
    if (stats.message) [state, text] = ["error", "error"]; // the message says what
    else if (stats.connected && now - this.progress.at < 3000) [state, text] = ["live", this.recording ? "recording" : "live"];
    else if (stats.connected) [state, text] = ["offline", this.cameraError ? `offline: ${this.cameraError}` : "no picture"];
    if (this.getAttribute("state") !== state) this.setAttribute("state", state);
    const element = this.shadowRoot.querySelector(".state");
    if (element.textContent !== text) element.textContent = text;
  }
}

/** The browser's microphone with its echo cancellation, noise suppression and gain control on. */
async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("the microphone needs a secure page: open this page over HTTPS or on localhost");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
  } catch (error) {
    const reasons = {
      NotAllowedError: "no microphone permission: allow the microphone for this site",
      NotFoundError: "no microphone found",
      NotReadableError: "the microphone is in use by another application",
    };
    throw new Error(reasons[error.name] || `the microphone could not be opened: ${error.message}`);
  }
}

/** 16 kHz for cameras that take AAC or L16 at 16 kHz or more, 8 kHz otherwise (G.711). */
function captureRate(granted) {
  const wide = ["MPEG4-GENERIC", "L16"].includes(String(granted.codec).toUpperCase());
  return wide && granted.rate >= 16000 ? 16000 : 8000;
}

function latencyOf(context) {
  return (context.outputLatency || 0) + (context.baseLatency || 0);
}

function fmt(value) {
  return value === null || value === undefined ? "-" : value;
}

customElements.define("opticlink-player", OpticlinkPlayer);
