// A camera's diagnostics page: the verdict in words, and uPlot plots of the history that
// GET /api/cameras/ID/diagnostics gives (a sample each 2 s for an hour, each minute for a day).
// The data shaping (`plotsOf`, `summaryOf`) is pure, for node tests; `mount` draws and refreshes.

export const SPANS = [{ seconds: 600, label: "10 min" }, { seconds: 3600, label: "1 h" }, { seconds: 86400, label: "24 h" }];
export const REFRESH_MS = 5000;
const COLORS = { audio: "#6cf", video: "#fc6" };
const EXTRA = ["#c9f", "#9e9", "#f99", "#fd8"];  // video-1 and the like
const SOURCE_LABELS = ["arrival", "reports", "fallback"];  // the codes of `source_codes` (rtcp: Sender Reports)

/** The camera a page address names: /cameras/ID/diagnostics, or the former /static/diagnostics.html?camera=ID;
 *  "" when none. */
export function cameraOf(location) {
  const path = /^\/cameras\/([^/]+)\/diagnostics\/?$/.exec(location.pathname ?? "");
  if (path) {
    try { return decodeURIComponent(path[1]); } catch { return ""; }
  }
  return new URLSearchParams(location.search ?? "").get("camera") ?? "";
}

/** The recorder's totals of a report (`recording`: gaps, frames_skipped, segments, active) in words, and
 *  whether they call for attention (any gap or skipped frame); null when the camera is not recorded. */
export function recordingText(recording) {
  if (!recording) return null;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const state = recording.active ? "Recording now" : "Not recording now";
  const text = `${state}: ${plural(recording.gaps ?? 0, "gap")} and `
    + `${plural(recording.frames_skipped ?? 0, "frame")} skipped since the service started `
    + `(${plural(recording.segments ?? 0, "segment")} written)`;
  return { text, note: (recording.gaps ?? 0) > 0 || (recording.frames_skipped ?? 0) > 0 };
}

/** The tracks in a report's series ("audio", "video", "video-1"...), audio first. */
export function tracksOf(series) {
  const names = new Set(Object.keys(series ?? {}).filter((k) => k.includes(".")).map((k) => k.split(".")[0]));
  return [...names].sort((a, b) => (a === "audio" ? -1 : b === "audio" ? 1 : a.localeCompare(b)));
}

export function colorOf(track, index) {
  return COLORS[track] ?? EXTRA[index % EXTRA.length];
}

const line = (label, values, color, extra = {}) => ({ label, values, color, ...extra });

/** The plots of a report: each {id, title, unit, series: [{label, values, color, kind, scale}]}, the
 *  values aligned with `report.t`. kind: "line", "step" (the mapping source) or "points" (events);
 *  re-anchors of 0 become null so that only the intervals with some show. */
export function plotsOf(report) {
  const series = report?.series ?? {};
  const tracks = tracksOf(series);
  const lift = (track) => 0.06 * (tracks.indexOf(track) - (tracks.length - 1) / 2);
  const per = (field, fn) => tracks.map((track, i) => fn(track, series[`${track}.${field}`] ?? [], colorOf(track, i)));
  return [
    { id: "skew", title: "Clock skew", unit: "ppm",
      series: per("skew_ppm", (track, v, c) => line(`${track} ppm`, v, c)) },
    { id: "jitter", title: "Interarrival jitter", unit: "ms",
      series: per("jitter_ms", (track, v, c) => line(`${track} ms`, v, c)) },
    { id: "loss", title: "Loss and reordering per interval", unit: "%",
      series: [...per("loss_pct", (track, v, c) => line(`${track} lost %`, v, c)),
               ...per("reordered", (track, v, c) => line(`${track} reordered`, v, c,
                                                          { kind: "points", scale: "count" }))] },
    { id: "source", title: "Timing source and re-anchors", unit: "source",
      // tracks a little apart, so that one sharing another's source does not hide it
      series: [...per("source", (track, v, c) => line(`${track} source`, v.map((x) => (x === null ? null : x + lift(track))),
                                                      c, { kind: "step", scale: "source" })),
               ...per("reanchors", (track, v, c) => line(`${track} re-anchors`, v.map((x) => (x ? x : null)), c,
                                                          { kind: "points", scale: "count" }))] },
    { id: "av", title: "A/V correction", unit: "ms",
      series: [line("audio against video ms", series.av_correction_ms ?? [], "#9e9")] },
    { id: "viewer", title: "Live viewers: latency and underruns", unit: "ms",
      series: [line("slowest viewer latency p95 ms", series.viewer_latency_ms ?? [], "#6cf"),
               line("underruns", (series.viewer_underruns ?? []).map((x) => (x ? x : null)), "#f66",
                    { kind: "points", scale: "count" })] },
  ];
}

/** The x range of a report: its span up to its last sample, or from its first sample when the history
 *  is younger than the span (a minute at least), so that a few samples are not squeezed into a corner. */
export function rangeOf(report) {
  const end = report.t.at(-1) ?? Date.now() / 1000;
  const first = report.t[0] ?? end;
  return [Math.max(end - report.seconds, Math.min(first, end - 60)), end];
}

/** Whether a report has anything to plot (a time with some known value). */
export function hasData(report) {
  const t = report?.t ?? [];
  return t.length > 0 && Object.values(report.series ?? {}).some((v) => v.some((x) => x !== null));
}

const lastKnown = (values) => { for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i]; return null; };

/** One sentence per plot for screen readers: each series' latest value. */
export function summaryOf(plot) {
  const parts = plot.series.map(({ label, values, scale }) => {
    const value = lastKnown(values);
    if (value === null) return `${label}: unknown`;
    return `${label}: ${scale === "source" ? SOURCE_LABELS[Math.round(value)] ?? value : Math.round(value * 100) / 100}`;
  });
  return `${plot.title}, latest: ${parts.join(", ")}`;
}

// -- the page --------------------------------------------------------------------------------

const AXIS = { stroke: "#bbb", grid: { stroke: "#2a2a2a" }, ticks: { stroke: "#333" } };

function optionsOf(uPlot, plot, width, range) {
  const scales = { x: { time: true, range } };
  const axes = [{ ...AXIS }, { ...AXIS, label: plot.unit, size: 60 }];
  if (plot.id === "source") {
    scales.source = { range: [-0.5, 2.5] };
    axes[1] = { ...AXIS, scale: "source", label: "source", size: 70, splits: () => [0, 1, 2],
                values: (_, ticks) => ticks.map((v) => SOURCE_LABELS[v] ?? "") };
  } else if (plot.id === "skew" || plot.id === "av") {
    scales.y = { range: (_, min, max) => [Math.min(min ?? 0, 0, -10), Math.max(max ?? 0, 0, 10)] };
  } else {
    scales.y = { range: (_, min, max) => [0, Math.max(max ?? 0, 1)] };
  }
  if (plot.series.some((s) => s.scale === "count")) {
    scales.count = { range: (_, min, max) => [0, Math.max(max ?? 0, 1)] };
    axes.push({ ...AXIS, scale: "count", side: 1, label: "count", grid: { show: false }, size: 50,
                incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000] });
  }
  const series = [{}, ...plot.series.map((s) => ({
    label: s.label, stroke: s.color, width: 1.5, scale: s.scale ?? (plot.id === "source" ? "source" : "y"),
    ...(s.kind === "step" ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
    ...(s.kind === "points" ? { paths: () => null, points: { show: true, size: 7, fill: s.color } } : {}),
    ...(s.scale === "source" ? { value: (_, v) => (v === null ? "–" : SOURCE_LABELS[Math.round(v)] ?? v) } : {}),
  }))];
  return { width, height: 180, scales, axes, series, legend: { live: true }, cursor: { drag: { x: false } } };
}

/** Draws the diagnostics of `camera` into `root` (which holds #verdict, #spans, #plots, #empty,
 *  #problem) and refreshes them each REFRESH_MS; returns {plots, refresh, stop}. */
export async function mount(root, camera) {
  const { default: uPlot } = await import("/static/vendor/uplot/uPlot.esm.js");
  const $ = (id) => root.querySelector(`#${id}`);
  const state = { seconds: SPANS[0].seconds, plots: new Map(), shape: "", range: [0, 1] };
  const width = () => Math.max(320, $("plots").clientWidth - 16);

  function draw(report) {
    const plots = plotsOf(report);
    state.range = rangeOf(report);
    const shape = `${state.seconds}|${plots.map((p) => p.series.map((s) => s.label).join()).join("|")}`;
    if (shape !== state.shape) {  // new tracks or a new span: new plots
      for (const { u } of state.plots.values()) u.destroy();
      state.plots.clear();
      $("plots").replaceChildren();
      state.shape = shape;
    }
    for (const plot of plots) {
      const data = [report.t, ...plot.series.map((s) => s.values)];
      let entry = state.plots.get(plot.id);
      if (!entry) {
        const figure = document.createElement("figure");
        figure.setAttribute("role", "group");
        figure.setAttribute("aria-labelledby", `title-${plot.id}`);
        const caption = document.createElement("figcaption");
        caption.id = `title-${plot.id}`;
        caption.textContent = `${plot.title} (${plot.unit})`;
        const box = document.createElement("div");
        box.setAttribute("role", "img");
        figure.append(caption, box);
        $("plots").append(figure);
        entry = { u: new uPlot(optionsOf(uPlot, plot, width(), () => state.range), data, box), box };
        state.plots.set(plot.id, entry);
      } else {
        entry.u.setData(data);
      }
      entry.box.setAttribute("aria-label", summaryOf(plot));
    }
  }

  async function refresh() {
    let report;
    try {
      const answer = await fetch(`/api/cameras/${encodeURIComponent(camera)}/diagnostics?seconds=${state.seconds}`);
      if (answer.status === 401) {
        location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        return;
      }
      if (!answer.ok) throw new Error((await answer.json().catch(() => null))?.detail ?? `the server answered ${answer.status}`);
      report = await answer.json();
    } catch (error) {
      $("problem").textContent = `Could not read the diagnostics: ${error.message}`;
      return;
    }
    $("problem").textContent = "";
    $("verdict").textContent = report.verdict;
    $("verdict").dataset.state = report.verdict === "all well" ? "well" : report.verdict === "no data yet" ? "none" : "note";
    const recorded = recordingText(report.recording);
    if ($("recording")) {
      $("recording").hidden = recorded === null;
      $("recording").textContent = recorded?.text ?? "";
      $("recording").dataset.state = recorded?.note ? "note" : "well";
    }
    const any = hasData(report);
    $("empty").hidden = any;
    $("plots").hidden = !any;
    if (any) draw(report);
  }

  for (const { seconds, label } of SPANS) {
    const input = Object.assign(document.createElement("input"), { type: "radio", name: "span", value: seconds,
                                                                   checked: seconds === state.seconds });
    input.addEventListener("change", () => { state.seconds = seconds; refresh(); });
    const choice = document.createElement("label");
    choice.append(input, ` ${label}`);
    $("spans").append(choice);
  }
  addEventListener("resize", () => { for (const { u } of state.plots.values()) u.setSize({ width: width(), height: 180 }); });
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return { plots: state.plots, refresh, stop: () => clearInterval(timer) };
}
