// The operator's wall: cameras in a grid of 1, 2x2, 3x3 or 4x4 tiles (paged when there are more
// cameras than tiles), one camera focused alone and large, and one camera heard at a time.
//
// The pure part (`initialWall`, `reduce`, `viewOf`) is the state machine the page and the keyboard
// drive; `Wall` builds the tiles and applies each state: which tiles show, which player is heard
// (`setAudible`), which decodes (`setVisible`: shown, on screen, and in a visible tab), which
// stream each asks for (`stream="sub"` in a tile, "main" focused, for cameras with a sub-stream).
// Keys: 1-4 layouts, arrows select, Enter or F focuses, Escape returns, PageUp/PageDown page,
// S shows the engineering stats, T held talks to the camera heard.

export const LAYOUTS = [1, 2, 3, 4]; // tiles per side

/** The smallest layout that shows `count` cameras at once, 4x4 at most. */
export function layoutFor(count) {
  return LAYOUTS.find((n) => n * n >= count) ?? LAYOUTS[LAYOUTS.length - 1];
}

/** The number of pages `count` cameras take in a layout of `size` x `size` tiles. */
export function pageCount(count, size) {
  return Math.max(1, Math.ceil(count / (size * size)));
}

/**
 * A wall of `ids` (camera ids, in order). `selected`: the tile the keyboard acts on; `focused`: the
 * camera shown alone, or null; `chosen`: the camera last clicked for sound, or null (none chosen yet:
 * every camera plays, as the page did before the wall, until the operator picks one).
 */
export function initialWall(ids, layout = layoutFor(ids.length)) {
  return { ids: [...ids], layout, page: 0, selected: ids[0] ?? null, focused: null, chosen: null };
}

/**
 * The wall after `action`: {type: "layout", size} | {type: "page", delta} | {type: "select", id} |
 * {type: "move", dx, dy} (arrows, within the grid) | {type: "choose", id} (a click: selected and heard) |
 * {type: "focus", id?} (the selected one without id) | {type: "unfocus"}.
 */
export function reduce(wall, action) {
  const next = { ...wall };
  const perPage = wall.layout * wall.layout;
  const pageOf = (id) => Math.floor(Math.max(0, wall.ids.indexOf(id)) / (next.layout * next.layout));
  switch (action.type) {
    case "layout":
      if (!LAYOUTS.includes(action.size)) return wall;
      next.layout = action.size;
      next.focused = null;
      next.page = next.selected === null ? 0 : pageOf(next.selected);
      return next;
    case "page": {
      if (wall.focused !== null) return wall;
      const pages = pageCount(wall.ids.length, wall.layout);
      next.page = (wall.page + action.delta + pages) % pages;
      next.selected = wall.ids[next.page * perPage] ?? wall.selected;
      return next;
    }
    case "select":
    case "choose":
      if (!wall.ids.includes(action.id)) return wall;
      next.selected = action.id;
      if (action.type === "choose") next.chosen = action.id;
      if (wall.focused === null) next.page = pageOf(action.id);
      return next;
    case "move": {
      if (wall.focused !== null || wall.selected === null) return wall;
      const index = wall.ids.indexOf(wall.selected);
      const column = (index % perPage) % wall.layout;
      const dx = column + action.dx < 0 || column + action.dx >= wall.layout ? 0 : action.dx;
      const target = index + dx + action.dy * wall.layout;
      if (target < 0 || target >= wall.ids.length) return wall;
      return reduce(wall, { type: "select", id: wall.ids[target] });
    }
    case "focus": {
      const id = action.id ?? wall.selected;
      if (!wall.ids.includes(id)) return wall;
      return { ...next, focused: id, selected: id };
    }
    case "unfocus":
      if (wall.focused === null) return wall;
      next.focused = null;
      next.page = pageOf(wall.focused);
      return next;
    default:
      return wall;
  }
}

export const MIX_MAX_TILES = 4; // a wall of up to this many tiles is all heard until a camera is chosen

/**
 * What the page shows: `columns` of the grid, the `shown` ids, and `audible`: the focused camera,
 * else the one chosen, else null (none chosen: every camera plays) on a wall of up to
 * MIX_MAX_TILES tiles; a bigger one plays its first tile's only (nine or sixteen voices at once are
 * noise to an operator, and as many audio paths would starve a small machine's sound).
 */
export function viewOf(wall) {
  if (wall.focused !== null) return { columns: 1, shown: [wall.focused], audible: wall.focused };
  const perPage = wall.layout * wall.layout;
  const shown = wall.ids.slice(wall.page * perPage, (wall.page + 1) * perPage);
  const audible = wall.chosen ?? (shown.length > MIX_MAX_TILES ? shown[0] : null);
  return { columns: wall.layout, shown, audible };
}

/** Whether a camera (an /api/cameras entry) can be talked to: talkback on and a speaker (as far as known). */
export function canTalk(camera) {
  return camera.talk !== null && camera.talk !== undefined && camera.talk.speaker !== false;
}

/** Whether a camera sends sound (unknown before it first connects: assumed so). */
export function hasAudio(camera) {
  const tracks = camera.tracks || [];
  return tracks.length === 0 || tracks.some((t) => t.kind === "audio" && !t.backchannel);
}

// a speaker, with sound waves when heard and a cross when muted (no emoji font needed)
const SPEAKER = '<path d="M3 9h4l5-4v14l-5-4H3z" fill="currentColor"/>';
const ICONS = {
  heard: `<svg viewBox="0 0 24 24" width="16" height="16">${SPEAKER}<path d="M15 9a4 4 0 0 1 0 6M17.5 6.5a7.5 7.5 0 0 1 0 11" ` +
    'stroke="currentColor" stroke-width="2" fill="none"/></svg>',
  muted: `<svg viewBox="0 0 24 24" width="16" height="16">${SPEAKER}<path d="M15 9l6 6M21 9l-6 6" stroke="currentColor" ` +
    'stroke-width="2"/></svg>',
};

const STYLE = `
  .ol-wall { display: grid; gap: 6px; padding: 0 6px 6px; height: calc(100vh - var(--ol-header, 44px) - 6px);
             box-sizing: border-box; grid-template-columns: repeat(var(--ol-columns), minmax(0, 1fr));
             grid-template-rows: repeat(var(--ol-columns), minmax(0, 1fr)); }
  .ol-tile { position: relative; display: flex; flex-direction: column; min-width: 0; min-height: 0;
             outline: 2px solid transparent; outline-offset: -2px; background: #000; }
  .ol-tile[hidden] { display: none; }
  .ol-tile.selected { outline-color: #4a90d9; }
  .ol-tile opticlink-player { flex: 1 1 auto; min-height: 0; aspect-ratio: auto; }
  /* small tiles are for watching: the recording timeline is under the focused camera and larger tiles */
  .ol-wall[data-layout="3"] .ol-timeline, .ol-wall[data-layout="4"] .ol-timeline { display: none; }
  .ol-speaker { position: absolute; top: 4px; right: 6px; z-index: 1; border: 0; border-radius: 12px;
                padding: 2px 8px 0; background: #0008; color: #aaa; cursor: pointer; line-height: 1; }
  .ol-speaker[aria-pressed=true] { background: #2e7d32cc; color: #fff; }
  .ol-diagnostics { position: absolute; top: 6px; right: 48px; z-index: 1; font-size: 12px; color: #9cf;
                    background: #0008; padding: 1px 6px; border-radius: 8px; text-decoration: none; }
  .ol-tile:not(:hover):not(.selected) .ol-diagnostics { opacity: 0; }
  .ol-layouts { display: flex; gap: 4px; align-items: baseline; }
  .ol-layouts button { font: inherit; color: #ddd; background: #222; border: 1px solid #555; border-radius: 4px;
                       padding: 1px 8px; cursor: pointer; }
  .ol-layouts button[aria-pressed=true] { background: #4a90d9; border-color: #4a90d9; color: #fff; }
  .ol-layouts .ol-page { color: #999; min-width: 4em; text-align: center; }
`;

/** The wall of `cameras` (/api/cameras entries) in `main`, with its controls in `header`. */
export class Wall {
  constructor(main, header, cameras, { document: doc = globalThis.document } = {}) {
    this.doc = doc;
    this.main = main;
    this.cameras = new Map(cameras.map((c) => [c.id, c]));
    this.state = initialWall(cameras.map((c) => c.id));
    this.statsShown = false;
    this.onScreen = new Map(); // id -> intersecting the viewport
    this.talking = null; // the player T talks on while held
    const style = doc.createElement("style");
    style.textContent = STYLE;
    doc.head.append(style);
    main.classList.add("ol-wall");
    this.tiles = new Map();
    for (const camera of cameras) this.tiles.set(camera.id, this.tile(camera));
    this.controls = this.buildControls();
    header.insertBefore(this.controls, header.querySelector(".user"));
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) this.onScreen.set(entry.target.dataset.camera, entry.isIntersecting);
      this.applyVisibility();
    });
    for (const tile of this.tiles.values()) this.observer.observe(tile);
    doc.addEventListener("visibilitychange", () => this.applyVisibility());
    doc.addEventListener("keydown", (event) => this.onKey(event));
    doc.addEventListener("keyup", (event) => this.onKeyUp(event));
    // the tiles fill the window under the header, whose height changes as controls are added or wrap
    const measure = () => main.style.setProperty("--ol-header", `${header.getBoundingClientRect().height}px`);
    measure();
    new ResizeObserver(measure).observe(header);
    this.apply();
  }

  /** The players, in camera order. */
  get players() { return [...this.tiles.values()].map((tile) => tile.player); }

  player(id) { return this.tiles.get(id)?.player ?? null; }

  tile(camera) {
    const doc = this.doc;
    const tile = doc.createElement("div");
    tile.className = "ol-tile";
    tile.dataset.camera = camera.id;
    tile.tabIndex = 0;
    const player = doc.createElement("opticlink-player");
    player.setAttribute("camera", camera.id);
    player.setAttribute("label", camera.name);
    player.setAttribute("nostats", "");
    if (!canTalk(camera)) player.setAttribute("notalk", "");
    if (camera.substream) player.setAttribute("stream", "sub");
    player.setVisible(false); // until the first state says otherwise: no decoding before it is placed
    tile.player = player;
    tile.append(player);
    if (hasAudio(camera)) {
      const speaker = doc.createElement("button");
      speaker.className = "ol-speaker";
      speaker.type = "button";
      speaker.title = "Hear this camera";
      tile.speaker = speaker;
      tile.append(speaker);
    }
    const diagnostics = Object.assign(doc.createElement("a"), {
      className: "ol-diagnostics", textContent: "Diagnostics", target: "_blank",
      href: `/cameras/${encodeURIComponent(camera.id)}/diagnostics`,
      title: "What this camera's clocks and network do, and what the engine corrects",
    });
    tile.append(diagnostics);
    // a click picks the camera to hear (and selects it); a double click focuses it
    tile.addEventListener("click", (event) => {
      if (!event.composedPath().some((e) => e === player || e === tile.speaker)) return;
      this.dispatch({ type: "choose", id: camera.id });
    });
    tile.addEventListener("dblclick", (event) => {
      const path = event.composedPath(); // on the picture, not on its buttons or timeline
      if (!path.includes(player) || path.some((e) => e.tagName === "BUTTON" || e.tagName === "INPUT")) return;
      const focused = this.state.focused === camera.id;
      this.dispatch(focused ? { type: "unfocus" } : { type: "focus", id: camera.id });
    });
    this.main.append(tile);
    return tile;
  }

  buildControls() {
    const doc = this.doc;
    const bar = doc.createElement("span");
    bar.className = "ol-layouts";
    const button = (text, title, onclick) => {
      const b = Object.assign(doc.createElement("button"), { type: "button", textContent: text, title });
      b.addEventListener("click", (event) => { onclick(); event.currentTarget.blur(); });
      bar.append(b);
      return b;
    };
    this.layoutButtons = LAYOUTS.map((n) => {
      const b = button(n === 1 ? "1" : `${n}×${n}`, `${n * n} camera${n > 1 ? "s" : ""} at a time (key ${n})`,
                       () => this.dispatch({ type: "layout", size: n }));
      b.dataset.layout = String(n);
      return b;
    });
    this.previous = button("‹", "Previous page (PageUp)", () => this.dispatch({ type: "page", delta: -1 }));
    this.pageLabel = Object.assign(doc.createElement("span"), { className: "ol-page" });
    bar.append(this.pageLabel);
    this.nextPage = button("›", "Next page (PageDown)", () => this.dispatch({ type: "page", delta: 1 }));
    this.statsButton = button("Stats", "Engineering statistics on each picture (key S)", () => this.toggleStats());
    this.statsButton.classList.add("ol-stats-toggle");
    return bar;
  }

  dispatch(action) {
    const before = this.state;
    this.state = reduce(this.state, action);
    if (this.state !== before) this.apply();
  }

  toggleStats(on = !this.statsShown) {
    this.statsShown = on;
    for (const player of this.players) player.toggleAttribute("nostats", !on);
    this.statsButton.setAttribute("aria-pressed", String(on));
  }

  /** Show the state: tiles, grid, selection, sound, streams, and what decodes. */
  apply() {
    const state = this.state;
    const view = viewOf(state);
    this.main.style.setProperty("--ol-columns", String(view.columns));
    this.main.dataset.layout = state.focused !== null ? "focused" : String(state.layout);
    const shown = new Set(view.shown);
    for (const [id, tile] of this.tiles) {
      tile.hidden = !shown.has(id);
      tile.classList.toggle("selected", id === state.selected && state.focused === null);
      const camera = this.cameras.get(id);
      if (camera.substream) {
        const stream = id === state.focused ? "main" : "sub";
        if (tile.player.getAttribute("stream") !== stream) tile.player.setAttribute("stream", stream);
      }
      const audible = view.audible === null || view.audible === id;
      tile.player.setAudible(audible);
      if (tile.speaker) {
        const icon = audible ? "heard" : "muted";
        if (tile.speaker.dataset.icon !== icon) {
          tile.speaker.dataset.icon = icon;
          tile.speaker.innerHTML = ICONS[icon];
        }
        tile.speaker.setAttribute("aria-pressed", String(view.audible === id));
        tile.speaker.title = audible ? "Heard" : "Muted: click to hear this camera";
      }
      tile.toggleAttribute("audible", audible);
    }
    for (const b of this.layoutButtons) b.setAttribute("aria-pressed", String(Number(b.dataset.layout) === state.layout));
    const pages = pageCount(state.ids.length, state.layout);
    this.pageLabel.textContent = state.focused !== null ? "focused" : pages > 1 ? `${state.page + 1} / ${pages}` : "";
    this.previous.hidden = this.nextPage.hidden = pages <= 1 || state.focused !== null;
    const selected = this.tiles.get(state.selected);
    if (selected && this.doc.activeElement?.classList?.contains("ol-tile") && selected !== this.doc.activeElement) {
      selected.focus({ preventScroll: true });
    }
    this.applyVisibility();
  }

  /** Decode only what can be seen: a shown tile, on screen, in a visible tab. */
  applyVisibility() {
    const tab = this.doc.visibilityState !== "hidden";
    for (const [id, tile] of this.tiles) {
      tile.player.setVisible(tab && !tile.hidden && this.onScreen.get(id) !== false);
    }
  }

  /** The player heard now: the focused or chosen camera's, else the selected one's. */
  audiblePlayer() {
    const view = viewOf(this.state);
    return this.player(view.audible ?? this.state.selected);
  }

  onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const path = event.composedPath();
    if (path.some((e) => ["INPUT", "TEXTAREA", "SELECT"].includes(e.tagName))) return; // typing in a form
    const onButton = path[0]?.tagName === "BUTTON";
    const key = event.key;
    const actions = {
      1: { type: "layout", size: 1 }, 2: { type: "layout", size: 2 }, 3: { type: "layout", size: 3 },
      4: { type: "layout", size: 4 }, f: { type: "focus" }, F: { type: "focus" }, Escape: { type: "unfocus" },
      PageUp: { type: "page", delta: -1 }, PageDown: { type: "page", delta: 1 },
      ArrowLeft: { type: "move", dx: -1, dy: 0 }, ArrowRight: { type: "move", dx: 1, dy: 0 },
      ArrowUp: { type: "move", dx: 0, dy: -1 }, ArrowDown: { type: "move", dx: 0, dy: 1 },
    };
    if (key === "Enter" && !onButton) {
      event.preventDefault();
      return this.dispatch({ type: "focus" });
    }
    if (key === "s" || key === "S") return this.toggleStats();
    if ((key === "t" || key === "T") && !event.repeat) {
      const player = this.audiblePlayer();
      if (!player || player.hasAttribute("notalk")) return;
      this.talking = player;
      return player.pressTalk();
    }
    if (actions[key] && !(onButton && key.startsWith("Arrow"))) {
      if (key.startsWith("Arrow") || key.startsWith("Page")) event.preventDefault();
      this.dispatch(actions[key]);
    }
  }

  onKeyUp(event) {
    if ((event.key === "t" || event.key === "T") && this.talking) {
      this.talking.releaseTalk();
      this.talking = null;
    }
  }

  /** The cameras' latest status (/api/cameras): each tile's reason when its camera is offline. */
  update(cameras) {
    for (const camera of cameras) {
      const tile = this.tiles.get(camera.id);
      if (!tile) continue;
      this.cameras.set(camera.id, { ...this.cameras.get(camera.id), ...camera });
      tile.player.cameraError = camera.state === "playing" ? null : camera.error || camera.state;
      tile.player.toggleAttribute("notalk", !canTalk(camera));
    }
  }
}
