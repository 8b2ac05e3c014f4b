// <opticlink-player camera="ID" [viewer="NAME"]>: a camera's live picture and sound, with the
// audio as the clock, and a talk button (hold to talk, or click to talk until clicked again).
// `playRecording(wall)` switches it to the camera's recording (the same Worker and worklet, fed by
// the playback WebSocket), `control({action})` plays, pauses, seeks and changes speed, `showLive()`
// goes back; a `playback` event carries the server's reset/playback/position messages.
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
  canvas { width: 100%; height: 100%; object-fit: contain; display: block; }
  .title { position: absolute; left: 8px; bottom: 6px; font: 600 13px system-ui, sans-serif;
           text-shadow: 0 1px 2px #000; }
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
  static observedAttributes = ["camera"];

  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML =
      `<style>${STYLE}</style><canvas></canvas><pre class="stats"></pre><div class="message"></div>` +
      `<div class="title"></div><div class="talk-message"></div>` +
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
    this.worker = null;
    this.node = null;
    this.samples = { avOffsets: [], latencies: [] };
    this.recording = null; // { start, speed, paused } while playing a recording
    this.playback = null; // { state, speed, wall }: the latest the server said
  }

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
    this.removeAttribute("playback");
    this.stop();
    this.start();
  }

  /** A playback command: {action: "play" | "pause"}, {action: "seek", wall}, {action: "speed", value}. */
  control(command) {
    this.worker?.postMessage({ type: "control", control: command });
  }

  /** The latest statistics from the Worker (frames, underruns, buffer, A/V offset, latency). */
  get stats() { return this._stats; }

  /** Every A/V offset at presentation and capture-to-presentation latency (ms) since the last call. */
  takeSamples() {
    const samples = this.samples;
    this.samples = { avOffsets: [], latencies: [] };
    return samples;
  }

  connectedCallback() { this.start(); }

  disconnectedCallback() { this.stop(); }

  attributeChangedCallback(name, before, after) {
    if (this.isConnected && before !== null && before !== after) { this.stop(); this.start(); }
  }

  async start() {
    const camera = this.getAttribute("camera");
    if (!camera) return;
    this.shadowRoot.querySelector(".title").textContent = this.getAttribute("label") || camera;
    const context = await audioContext();
    const ring = new SampleRing(RING_CAPACITY);
    const shared = ring.shared;
    this.node = new AudioWorkletNode(context, "opticlink-audio", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2],
      processorOptions: shared ? { data: ring.dataBuffer, control: ring.controlBuffer } : {},
    });
    this.node.connect(context.destination);
    this.worker = new Worker(new URL("./live-worker.js", import.meta.url), { type: "module" });
    const element = this.shadowRoot.querySelector("canvas");
    const fresh = document.createElement("canvas"); // a canvas is handed to one Worker only, once
    element.replaceWith(fresh);
    const canvas = fresh.transferControlToOffscreen();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const viewer = this.getAttribute("viewer") || new URLSearchParams(location.search).get("name");
    const query = viewer ? `?name=${encodeURIComponent(viewer)}` : "";
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
      this.node.port.postMessage({ type: "port", port: channel.port2 }, [channel.port2]);
      init.port = channel.port1;
      transfer.push(channel.port1);
    }
    this.worker.postMessage(init, transfer);
    this.worker.onmessage = (event) => {
      if (event.data.type === "talk") return this.onTalk(event.data);
      if (event.data.type === "playback") return this.onPlayback(event.data.message);
      if (event.data.type === "refused") { // 4401: the login ended; the page decides where to go
        this.shadowRoot.querySelector(".message").textContent = event.data.reason;
        return this.dispatchEvent(new CustomEvent("refused", { detail: event.data, bubbles: true, composed: true }));
      }
      if (event.data.type !== "stats") return;
      this.samples.avOffsets.push(...event.data.samples.avOffsets);
      this.samples.latencies.push(...event.data.samples.latencies);
      if (this.samples.avOffsets.length > 100000) this.takeSamples();
      this.show(event.data.stats);
    };
    this.latencyTimer = setInterval(() => this.worker?.postMessage({ type: "latency", outputLatency: latencyOf(context) }),
                                    1000);
  }

  stop() {
    this.stopTalk(false);
    clearInterval(this.latencyTimer);
    this.worker?.postMessage({ type: "close" });
    this.worker?.terminate();
    this.node?.disconnect();
    this.worker = this.node = null;
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
    talk.microphone = openMicrophone();
    talk.microphone.catch((error) => {
      if (this.talk.state !== "idle") { this.stopTalk(); this.talkMessage(error.message); }
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
      `video ${stats.videoCodec ?? "-"}  decoded ${stats.framesDecoded}  shown ${stats.framesShown}  dropped ${stats.framesDropped}`,
      `audio ${stats.audioCodec ?? "-"}  buffer ${stats.bufferMs} / ${stats.targetBufferMs} ms  underruns ${stats.underruns}` +
        `  trim ${stats.trimPercent}%`,
      `clock ${stats.clock}  A/V at presentation ${fmt(stats.avOffsetMs)} ms (p99 ${fmt(stats.avOffsetP99Ms)})`,
      `latency ${fmt(stats.latencyMs)} ms (p50 ${fmt(stats.latencyP50Ms)}, p95 ${fmt(stats.latencyP95Ms)})`,
    ];
    if (stats.talkFramesSent) {
      lines.push(`talk sent ${stats.talkFramesSent}  dropped ${stats.talkFramesDropped}` +
                 `  capture p50 ${fmt(stats.talkCaptureP50Ms)} p95 ${fmt(stats.talkCaptureP95Ms)} ms`);
    }
    if (this.recording && stats.wall) lines.push(`recorded ${new Date(stats.wall * 1000).toISOString()}`);
    this.shadowRoot.querySelector(".stats").textContent = lines.join("\n");
    this.shadowRoot.querySelector(".message").textContent = stats.message || (this.recording && this.playbackNote) ||
      (stats.connected ? "" : "connecting…");
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
