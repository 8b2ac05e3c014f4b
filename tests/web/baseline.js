// The baseline for comparison (bench only): the "browser media player" of the brief.
//
// Everything on the main thread: the WebSocket, G.711 decoding, 8 kHz AudioBuffers played by
// AudioBufferSourceNodes scheduled back to back (the browser upsamples them by linear
// interpolation), and video decoded by WebCodecs and drawn by timers. When the page is busy,
// buffers are scheduled late and the sound breaks up; those breaks are counted as underruns.
// Served at /static/bench/ when the service runs with OPTICLINK_BENCH_DIR=tests/web (api/app.py), so
// "../" below is the player's own /static/.
import { decodeG711 } from "../g711.js";
import { parseConfig, parseFrame, FLAGS, base64Bytes } from "../protocol.js";

const LEAD = 0.04; // seconds of audio scheduled ahead, the same floor as our player

export class BaselinePlayer extends HTMLElement {
  connectedCallback() {
    this.innerHTML = "<canvas style='width:100%;background:#000'></canvas>";
    this.canvas = this.querySelector("canvas");
    this.ctx2d = this.canvas.getContext("2d");
    this._stats = { underruns: 0, framesShown: 0, framesDecoded: 0, avOffsets: [], latencies: [], audioFrames: 0,
                    clock: "audio", bufferMs: 0 };
    this.context = new AudioContext({ latencyHint: 0 });
    this.nextTime = 0;
    this.ptsAtTime = null; // [context time, pts] of the last scheduled buffer
    this.wallOf = new Map();
    const camera = this.getAttribute("camera");
    const socket = new WebSocket(`ws://${location.host}/api/cameras/${encodeURIComponent(camera)}/live`);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => this.onMessage(new Uint8Array(event.data));
    this.socket = socket;
  }

  get stats() { return this._stats; }

  takeSamples() {
    const samples = { avOffsets: this._stats.avOffsets, latencies: this._stats.latencies };
    this._stats.avOffsets = [];
    this._stats.latencies = [];
    return samples;
  }

  disconnectedCallback() { this.socket?.close(); this.context?.close(); }

  onMessage(bytes) {
    if (bytes[0] === 1) return this.configure(parseConfig(bytes));
    if (!this.tracks) return;
    const frame = parseFrame(bytes);
    const track = this.tracks.get(frame.track);
    if (!track) return;
    if (track.kind === "audio") this.onAudio(frame, track);
    else this.onVideo(frame);
  }

  configure(config) {
    this.tracks = new Map(config.tracks.map((t) => [t.track, t]));
    const video = config.tracks.find((t) => t.kind === "video");
    if (video && !this.decoder) {
      this.decoder = new VideoDecoder({ output: (f) => this.schedule(f), error: () => {} });
      this.decoder.configure({ codec: video.codec, description: base64Bytes(video.description), optimizeForLatency: true });
      this.waitingKey = true;
    }
  }

  onAudio(frame, track) {
    if (track.codec !== "pcmu" && track.codec !== "pcma") return;
    this._stats.audioFrames++;
    const samples = decodeG711(frame.payload, track.codec);
    const buffer = this.context.createBuffer(1, samples.length, track.sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const now = this.context.currentTime;
    if (this.nextTime < now) {
      if (this.nextTime > 0) this._stats.underruns++;
      this.nextTime = now + LEAD;
    }
    source.start(this.nextTime);
    this.ptsAtTime = [this.nextTime, frame.pts];
    this.nextTime += buffer.duration;
    this._stats.bufferMs = +((this.nextTime - now) * 1000).toFixed(1);
  }

  /** The presentation time of the sound playing now, from the last scheduled buffer. */
  clock() {
    if (!this.ptsAtTime) return null;
    const latency = (this.context.outputLatency || 0) + (this.context.baseLatency || 0);
    return this.ptsAtTime[1] + (this.context.currentTime - latency - this.ptsAtTime[0]) * 1e6;
  }

  onVideo(frame) {
    const key = (frame.flags & FLAGS.keyframe) !== 0;
    if (this.waitingKey && !key) return;
    this.waitingKey = false;
    if (frame.wall > 0) this.wallOf.set(Math.round(frame.pts), frame.wall);
    this.decoder.decode(new EncodedVideoChunk({ type: key ? "key" : "delta", timestamp: Math.round(frame.pts),
                                                data: frame.payload }));
  }

  schedule(videoFrame) {
    this._stats.framesDecoded++;
    const clock = this.clock();
    const delay = clock === null ? 0 : Math.max(0, (videoFrame.timestamp - clock) / 1000);
    setTimeout(() => this.draw(videoFrame), delay);
  }

  draw(videoFrame) {
    const clock = this.clock();
    if (this.canvas.width !== videoFrame.displayWidth) {
      this.canvas.width = videoFrame.displayWidth;
      this.canvas.height = videoFrame.displayHeight;
    }
    this.ctx2d.drawImage(videoFrame, 0, 0);
    this._stats.framesShown++;
    if (clock !== null) this._stats.avOffsets.push((videoFrame.timestamp - clock) / 1000);
    const wall = this.wallOf.get(videoFrame.timestamp);
    if (wall) this._stats.latencies.push(performance.timeOrigin + performance.now() - wall / 1000);
    videoFrame.close();
  }
}

customElements.define("baseline-player", BaselinePlayer);
