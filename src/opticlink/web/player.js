// <opticlink-player camera="ID">: a camera's live picture and sound, with the audio as the clock.
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
`;

export class OpticlinkPlayer extends HTMLElement {
  static observedAttributes = ["camera"];

  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML =
      `<style>${STYLE}</style><canvas></canvas><pre class="stats"></pre><div class="message"></div>` +
      `<div class="title"></div>`;
    this._stats = null;
    this.worker = null;
    this.node = null;
    this.samples = { avOffsets: [], latencies: [] };
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
    const canvas = this.shadowRoot.querySelector("canvas").transferControlToOffscreen();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const init = { type: "init", url: `${scheme}://${location.host}/api/cameras/${encodeURIComponent(camera)}/live`,
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
    clearInterval(this.latencyTimer);
    this.worker?.postMessage({ type: "close" });
    this.worker?.terminate();
    this.node?.disconnect();
    this.worker = this.node = null;
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
    this.shadowRoot.querySelector(".stats").textContent = lines.join("\n");
    this.shadowRoot.querySelector(".message").textContent = stats.message || (stats.connected ? "" : "connecting…");
  }
}

function latencyOf(context) {
  return (context.outputLatency || 0) + (context.baseLatency || 0);
}

function fmt(value) {
  return value === null || value === undefined ? "-" : value;
}

customElements.define("opticlink-player", OpticlinkPlayer);
