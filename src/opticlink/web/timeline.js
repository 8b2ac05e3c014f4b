// The recording timeline under each camera: recorded ranges, gaps (their cause on hover), who talked
// when; click or drag to seek, play/pause, speed (0.5x to 4x: sound at 1x only), -10 s / +10 s, and
// "Live" to go back to the live picture. With "Sync all cameras" on, what is done on one timeline is
// done on every camera at the same wall time, and the cameras play frame-locked: the camera acted on
// leads (its clock is the group's, its sound the one heard) and every other playing camera follows
// its cursor (group-clock.js: rate trims and drop/repeat of pictures in each follower's Worker, never
// a seek), so they show the pictures of the same wall time for as long as they play.
//
// The playing itself is the player's (`<opticlink-player>`: playRecording, control, showLive, its
// `playback` events); this module only draws and sends commands. The time math at the top is pure
// (node-tested in tests/js/timeline.test.mjs); the DOM is touched only when a timeline is built.
import { leaderOf } from "./group-clock.js";

export const SPANS = [["10 min", 600], ["1 h", 3600], ["6 h", 21600], ["24 h", 86400]];
export const SPEEDS = [0.5, 1, 2, 4];
export const JUMP_S = 10;
const REFRESH_MS = 10000;
const HEIGHT = 34;
const TALK_HEIGHT = 6;

/** The x (px) of a wall time (s) in a view {start, end} drawn `width` px wide (not clamped). */
export function xOfWall(wall, view, width) {
  return ((wall - view.start) / (view.end - view.start)) * width;
}

/** The wall time at x (px), clamped to the view. */
export function wallOfX(x, view, width) {
  const share = Math.min(1, Math.max(0, x / width));
  return view.start + share * (view.end - view.start);
}

/** Spans [[start, end], ...] or [{start, end}] as pixel rectangles {x, w, span} inside the view, at
 *  least one pixel wide (a short gap stays visible), in order. */
export function spansInView(spans, view, width) {
  const out = [];
  for (const span of spans) {
    const [start, end] = Array.isArray(span) ? span : [span.start, span.end ?? view.end];
    if (end < view.start || start > view.end) continue;
    const x0 = Math.max(0, xOfWall(start, view, width));
    const x1 = Math.min(width, xOfWall(end, view, width));
    out.push({ x: x0, w: Math.max(1, x1 - x0), span });
  }
  return out;
}

/** The span (gap or talk) under the wall time `wall`, within `slack` seconds (a thin one is hard to hit). */
export function spanAt(spans, wall, slack = 0) {
  return spans.find((s) => wall >= s.start - slack && wall <= (s.end ?? Infinity) + slack) ?? null;
}

/** The view after the cursor moved: unchanged while the cursor is inside it, else moved so the cursor
 *  sits at 3/4 of it; never past `now` (there is nothing recorded after now). */
export function followView(view, cursor, now) {
  const length = view.end - view.start;
  let end = view.end;
  if (cursor > view.end || cursor < view.start) end = cursor + length / 4;
  end = Math.min(end, now);
  return { start: end - length, end };
}

/** A new view of `length` seconds around the cursor (the span select), ending at most at `now`. */
export function viewOf(length, cursor, now) {
  const end = Math.min(now, cursor + length / 4);
  return { start: end - length, end };
}

/** HH:MM:SS of a wall time, local. */
export function clock(wall) {
  const d = new Date(wall * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** Ticks for a view: a round step giving about `count` labels, [wall, ...]. */
export function ticks(view, count = 6) {
  const steps = [10, 30, 60, 300, 600, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const length = view.end - view.start;
  const step = steps.find((s) => length / s <= count) ?? 86400;
  const out = [];
  for (let t = Math.ceil(view.start / step) * step; t <= view.end; t += step) out.push(t);
  return out;
}

// DOM -----------------------------------------------------------------------------------------------

const STYLE = `
  .ol-timeline { font: 12px system-ui, sans-serif; color: #ccc; background: #1a1a1a; padding: 4px 6px 6px;
                 user-select: none; }
  .ol-timeline .row { display: flex; gap: 6px; align-items: center; margin-bottom: 4px; }
  .ol-timeline button, .ol-timeline select { font: inherit; background: #2a2a2a; color: #ddd;
                 border: 1px solid #444; border-radius: 4px; padding: 2px 8px; cursor: pointer; }
  .ol-timeline button.live[aria-pressed=true] { background: #b3261e; border-color: #ff8a80; color: #fff; }
  .ol-timeline .time { margin-left: auto; font-variant-numeric: tabular-nums; }
  .ol-timeline canvas { width: 100%; height: ${HEIGHT}px; display: block; cursor: pointer; touch-action: none; }
  .ol-sync { display: flex; gap: 6px; align-items: center; color: #bbb; }
`;

/** What several timelines share: the "Sync all cameras" switch; an action on one goes to all when on. */
export class SyncGroup {
  constructor() {
    this.bars = [];
    this.enabled = false;
    this.preferred = null; // the bar acted on last: the group's leader while it plays a recording
  }

  add(bar) {
    this.bars.push(bar);
    bar.player.addEventListener("cursor", (event) => this.onCursor(bar, event.detail));
  }

  /** Do `action` on `origin`'s camera, or on every camera when synced. A jump is made a seek from the
   *  origin's cursor, so every camera lands on the same time. */
  apply(origin, action) {
    if (action.type === "jump") action = { type: "seek", wall: origin.cursor + action.delta };
    if (action.type === "play" && this.enabled) action = { type: "play", wall: origin.cursor };
    if (action.type !== "live") this.preferred = origin;
    for (const bar of this.enabled ? this.bars : [origin]) bar.perform(action);
  }

  /** The bar whose camera sets the group's clock, or null. */
  leader() {
    const found = leaderOf(this.bars.map((bar) => ({ id: bar, recording: Boolean(bar.player.recording) })),
                           this.preferred);
    return found?.id ?? null;
  }

  /** Synced: the leader's cursor (ten a second, while it shows pictures) goes to every other playing camera. */
  onCursor(bar, cursor) {
    if (!this.enabled || !cursor || bar !== this.leader()) return;
    if (bar.player.following) bar.player.follow(null); // it leads now
    for (const other of this.bars) {
      if (other !== bar && other.player.recording) other.player.follow(cursor);
    }
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    if (!enabled) for (const bar of this.bars) bar.player.follow(null);
  }

  /** The switch, for the page's header. */
  control() {
    const label = document.createElement("label");
    label.className = "ol-sync";
    const box = Object.assign(document.createElement("input"), { type: "checkbox" });
    box.addEventListener("change", () => this.setEnabled(box.checked));
    label.append(box, "Sync all cameras");
    return label;
  }
}

/** The timeline of one `<opticlink-player>`; `element` goes under it. */
export class PlaybackBar {
  constructor(player, group, { request = (url) => fetch(url), now = () => Date.now() / 1000 } = {}) {
    this.player = player;
    this.group = group;
    this.request = request;
    this.now = now;
    this.camera = player.getAttribute("camera");
    this.data = { segments: [], gaps: [], talk: [] };
    this.view = viewOf(3600, now(), now());
    this.cursor = now();
    this.dragging = null; // wall under the pointer while dragging
    this.hover = null;
    this.speed = 1;
    this.element = this.build();
    player.addEventListener("playback", (event) => this.onPlayback(event.detail));
    player.timeline = this;
    this.refresh();
    this.timer = setInterval(() => this.tick(), 250);
    // the timelines of a wall, built together, would all ask the server at the same moment: each
    // starts its refreshes at its own point of the period
    setTimeout(() => setInterval(() => this.refresh(), REFRESH_MS), Math.random() * REFRESH_MS);
  }

  get live() { return !this.player.recording; }

  build() {
    const root = document.createElement("div");
    root.className = "ol-timeline";
    root.innerHTML = `<div class="row">
        <button class="live" aria-pressed="true" title="Back to the live picture">Live</button>
        <button class="back" title="Back 10 s">−10 s</button>
        <button class="play" title="Play or pause the recording">Play</button>
        <button class="forward" title="Forward 10 s">+10 s</button>
        <select class="speed" title="Speed (sound at 1× only)">${SPEEDS.map((s) =>
          `<option value="${s}"${s === 1 ? " selected" : ""}>${s}×</option>`).join("")}</select>
        <select class="span" title="How much of the timeline is shown">${SPANS.map(([name, s]) =>
          `<option value="${s}"${s === 3600 ? " selected" : ""}>${name}</option>`).join("")}</select>
        <span class="time"></span></div><canvas height="${HEIGHT}"></canvas>`;
    const $ = (selector) => root.querySelector(selector);
    $(".live").addEventListener("click", () => this.group.apply(this, { type: "live" }));
    $(".back").addEventListener("click", () => this.group.apply(this, { type: "jump", delta: -JUMP_S }));
    $(".forward").addEventListener("click", () => this.group.apply(this, { type: "jump", delta: JUMP_S }));
    $(".play").addEventListener("click", () => {
      const playing = !this.live && this.player.playback?.state === "playing";
      this.group.apply(this, { type: playing ? "pause" : "play" });
    });
    $(".speed").addEventListener("change", (event) => {
      this.group.apply(this, { type: "speed", value: Number(event.target.value) });
    });
    $(".span").addEventListener("change", (event) => {
      this.view = viewOf(Number(event.target.value), this.cursor, this.now());
      this.refresh();
    });
    const canvas = $("canvas");
    const wallAt = (event) => wallOfX(event.offsetX, this.view, canvas.clientWidth);
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      this.dragging = wallAt(event);
      this.draw();
    });
    canvas.addEventListener("pointermove", (event) => {
      const wall = wallAt(event);
      if (this.dragging !== null) this.dragging = wall;
      this.hover = wall;
      const slack = (this.view.end - this.view.start) / canvas.clientWidth * 3;
      const gap = spanAt(this.data.gaps, wall, slack);
      const talk = spanAt(this.data.talk, wall, slack);
      canvas.title = [clock(wall), gap && `gap: ${gap.cause}${gap.detail ? ` (${gap.detail})` : ""}`,
                      talk && `${talk.user} talked`].filter(Boolean).join("\n");
      this.draw();
    });
    canvas.addEventListener("pointerup", () => {
      if (this.dragging === null) return;
      const wall = this.dragging;
      this.dragging = null;
      this.group.apply(this, { type: "seek", wall });
    });
    canvas.addEventListener("pointerleave", () => { this.hover = null; this.draw(); });
    const style = document.createElement("style");
    style.textContent = STYLE;
    root.prepend(style);
    return root;
  }

  /** Carry out an action on this camera (from this timeline or, synced, another). */
  perform(action) {
    const player = this.player;
    if (action.type === "live") {
      player.showLive();
    } else if (action.type === "seek") {
      const wall = Math.min(action.wall, this.now());
      this.cursor = wall;
      if (this.live) player.playRecording(wall, { speed: this.speed });
      else player.control({ action: "seek", wall });
    } else if (action.type === "play") {
      if (this.live) player.playRecording(action.wall ?? this.now() - JUMP_S, { speed: this.speed });
      else if (action.wall !== undefined && Math.abs(action.wall - this.cursor) > 0.5) {
        player.control({ action: "seek", wall: action.wall });
        player.control({ action: "play" });
      } else player.control({ action: "play" });
    } else if (action.type === "pause") {
      if (!this.live) player.control({ action: "pause" });
    } else if (action.type === "speed") {
      this.speed = action.value;
      this.element.querySelector(".speed").value = String(action.value);
      if (!this.live) player.control({ action: "speed", value: action.value });
    }
    this.tick();
  }

  onPlayback(message) {
    if (message.wall) this.cursor = message.wall;
    if (message.speed) this.speed = message.speed;
    this.tick();
  }

  async refresh() {
    const { start, end } = this.view;
    try {
      const answer = await this.request(`/api/cameras/${encodeURIComponent(this.camera)}/timeline?` +
                                        `start=${start.toFixed(3)}&end=${end.toFixed(3)}`);
      if (answer.ok) this.data = await answer.json();
    } catch {
      // offline for a moment: the next refresh draws it
    }
    this.draw();
  }

  tick() {
    const now = this.now();
    if (this.live) this.cursor = now;
    const before = this.view;
    this.view = this.live && this.view.end < now ? { start: now - (before.end - before.start), end: now }
      : followView(this.view, this.cursor, now);
    if (this.view.start !== before.start && Math.abs(this.view.start - before.start) > (before.end - before.start) / 4) {
      this.refresh();
    }
    const state = this.live ? "live" : this.player.playback?.state ?? "paused";
    // only what changed is touched: a page of many cameras must not relayout and repaint four times a second
    this.set(".live", "aria-pressed", String(this.live));
    this.set(".play", "textContent", state === "playing" ? "Pause" : "Play");
    this.set(".time", "textContent", this.live ? `live ${clock(now)}` : `${state} ${clock(this.cursor)}`);
    this.draw();
  }

  set(selector, what, value) {
    const element = this.element.querySelector(selector);
    if (what === "textContent") {
      if (element.textContent !== value) element.textContent = value;
    } else if (element.getAttribute(what) !== value) element.setAttribute(what, value);
  }

  draw() {
    const canvas = this.element.querySelector("canvas");
    const width = canvas.clientWidth || 480;
    const view = this.view;
    const pixel = (wall) => (wall === null || wall === undefined ? null : Math.round(xOfWall(wall, view, width)));
    // what the picture shows, to the pixel: unchanged, it is not drawn again
    const key = [width, this.data, pixel(this.hover), pixel(this.dragging ?? this.cursor), this.live,
                 Math.round(view.start * width / (view.end - view.start)), view.end - view.start];
    if (this.drawn && key.every((value, i) => value === this.drawn[i])) return;
    this.drawn = key;
    if (canvas.width !== width) canvas.width = width;
    const g = canvas.getContext("2d");
    g.fillStyle = "#262626";
    g.fillRect(0, 0, width, HEIGHT);
    g.fillStyle = "#2e7d32"; // recorded
    for (const r of spansInView(this.data.segments, view, width)) g.fillRect(r.x, TALK_HEIGHT + 2, r.w, HEIGHT - 16);
    g.fillStyle = "#c62828"; // gaps
    for (const r of spansInView(this.data.gaps, view, width)) g.fillRect(r.x, TALK_HEIGHT + 2, r.w, HEIGHT - 16);
    g.fillStyle = "#ffb300"; // talk
    for (const r of spansInView(this.data.talk, view, width)) g.fillRect(r.x, 0, r.w, TALK_HEIGHT);
    g.fillStyle = "#999";
    g.font = "10px system-ui, sans-serif";
    for (const t of ticks(view)) {
      const x = xOfWall(t, view, width);
      g.fillRect(x, HEIGHT - 8, 1, 3);
      g.fillText(clock(t).slice(0, 5), Math.min(width - 28, x + 2), HEIGHT - 1);
    }
    const line = (wall, color) => {
      const x = xOfWall(wall, view, width);
      if (x < 0 || x > width) return;
      g.fillStyle = color;
      g.fillRect(Math.round(x) - 1, 0, 2, HEIGHT - 8);
    };
    if (this.hover !== null) line(this.hover, "#ffffff55");
    line(this.dragging ?? this.cursor, this.live ? "#ff8a80" : "#ffffff");
  }
}

/** A timeline under each player (each in its own cell of the page), and the sync switch in `header`. */
export function addTimelines(players, header) {
  const group = new SyncGroup();
  if (header) header.insertBefore(group.control(), header.querySelector(".user")); // before the user's name
  for (const player of players) {
    const bar = new PlaybackBar(player, group);
    group.add(bar);
    player.after(bar.element);
  }
  return group;
}
