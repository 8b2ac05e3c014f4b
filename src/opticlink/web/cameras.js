// The admin's camera panel: a "Cameras" header button opens it. It lists every camera (those cameras.yaml
// declares are marked and not editable), adds one by its RTSP address (Test connection plays it for a few
// seconds first and says what it sends and what is wrong, in plain words), finds ONVIF cameras (the local
// network, or one probe address) and fills the form from one, edits, enables, disables and removes cameras,
// and runs the audio loop test on cameras with talk. Each change is made through /api/cameras; the page then
// reloads itself (the panel open again), so the wall shows the cameras as they now are.
// Plain ES module; the page adds it for admins. Every text from the server goes in as text, never as HTML.

const REOPEN = "opticlink-cameras-open"; // sessionStorage: reopen the panel (and a note) after the reload
const FORM_FIELDS = [
  { name: "id", label: "Id", hint: "letters, digits, _ and -: names the camera in addresses" },
  { name: "name", label: "Name" },
  { name: "url", label: "URL", hint: "rtsp://192.0.2.10:554/stream1" },
  { name: "username", label: "User" },
  { name: "password", label: "Password", type: "password" },
  { name: "substream_url", label: "Sub-stream URL", hint: "optional: the low-resolution stream, for tiles" },
];

/** The server's refusal as a sentence: FastAPI's `detail` is a string or a list of validation errors. */
export function refusalText(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) return detail.map((d) => `${d.loc?.at(-1) ?? ""}: ${d.msg}`).join("; ");
  return `the server answered ${status}`;
}

/** What a probe found, in words: one line of what the camera sends, then its problems. */
export function probeSummary(probe) {
  const found = [];
  const tracks = probe.tracks ?? [];
  if (tracks.length) found.push(`${tracks.length} track${tracks.length > 1 ? "s" : ""}: `
    + tracks.map((t) => `${t.kind} ${t.codec}`).join(", "));
  const v = probe.video;
  if (v) found.push(`video ${v.name ?? v.codec}${v.width ? ` ${v.width}x${v.height}` : ""}`
    + `${v.frame_rate ? ` at ${v.frame_rate} fps` : ""}`);
  if (probe.audio) found.push(`audio ${probe.audio.name ?? probe.audio.codec}`
    + (probe.audio.supported === false ? " (not supported: no sound)" : ""));
  if (probe.backchannel) found.push(`speaker (talk) ${probe.backchannel.codec}`);
  if (probe.playing) found.push(probe.sender_reports ? "timing reports: yes" : "timing reports: none");
  return { found: found.join("; ") || "nothing: the camera could not be played", problems: probe.problems ?? [] };
}

/** The audio loop test's result in words. */
export function audioTestText(result) {
  const parts = [];
  if (result.found) {
    parts.push(`echo heard ${Math.round(result.echo_delay_ms)} ms after the sound, at ${Number(result.echo_level_db).toFixed(0)} dB`);
  } else {
    parts.push("the camera's microphone did not hear its speaker");
  }
  if (result.round_trip_ms != null) parts.push(`round trip ${Math.round(result.round_trip_ms)} ms`);
  return `${parts.join("; ")}. ${result.recommendation ?? ""}`.trim();
}

const STYLE = `
  #ol-cameras { position: fixed; top: 44px; right: 12px; z-index: 20; width: min(640px, 96vw); max-height: calc(100vh - 60px);
                overflow: auto; background: #181818f4; border: 1px solid #555; border-radius: 8px; padding: 10px 14px;
                color: #eee; font: 13px system-ui, sans-serif; box-shadow: 0 6px 24px #000a; }
  #ol-cameras[hidden] { display: none; }
  #ol-cameras h2 { font-size: 16px; margin: 0 0 8px; display: flex; justify-content: space-between; }
  #ol-cameras h3 { font-size: 14px; margin: 14px 0 6px; }
  #ol-cameras table { width: 100%; border-collapse: collapse; }
  #ol-cameras td { padding: 3px 4px; border-top: 1px solid #333; vertical-align: top; }
  #ol-cameras .ol-tag { color: #aaa; font-style: italic; }
  #ol-cameras button { background: #2a2a2a; color: #9cf; border: 1px solid #555; border-radius: 4px; padding: 2px 8px;
                       font: inherit; cursor: pointer; margin: 1px 2px; }
  #ol-cameras button:disabled { color: #777; cursor: wait; }
  #ol-cameras form label { display: grid; grid-template-columns: 120px 1fr; gap: 6px; align-items: center; margin: 3px 0; }
  #ol-cameras input { background: #222; color: #eee; border: 1px solid #666; padding: 3px 5px; font: inherit; }
  #ol-cameras .ol-error { color: #ff9a8a; grid-column: 2; font-size: 12px; }
  #ol-cameras .ol-note { color: #ffcf6e; margin: 4px 0; white-space: pre-line; }
  #ol-cameras .ol-note.ok { color: #9c9; }
  #ol-cameras .ol-problems { color: #ffcf6e; margin: 2px 0 2px 18px; padding: 0; }
  #ol-cameras details { margin: 4px 0; color: #bbb; }
`;

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("aria-") || key === "for" || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Add the "Cameras" button to the header (before `before`, if given) and its panel to the page. */
export function addCameras(header, { before = null, request = fetch, reload = () => location.reload() } = {}) {
  const style = element("style", { textContent: STYLE });
  document.head.append(style);
  const button = element("button", { type: "button", id: "cameras-button", textContent: "Cameras",
                                     title: "Add, edit and remove cameras" });
  button.setAttribute("aria-expanded", "false");
  header.insertBefore(button, before);
  const panel = new CameraPanel({ request, reload });
  document.body.append(panel.root);
  const toggle = (open) => {
    panel.root.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) panel.refresh();
  };
  button.onclick = () => toggle(panel.root.hidden);
  panel.onClose = () => toggle(false);
  const kept = sessionStorage.getItem(REOPEN);
  if (kept !== null) {
    sessionStorage.removeItem(REOPEN);
    toggle(true);
    if (kept) panel.say(kept, true);
  }
  return panel;
}

class CameraPanel {
  constructor({ request, reload }) {
    this.request = request;
    this.reload = reload;
    this.editing = null; // the id of the camera the form edits, or null: the form adds
    this.onClose = () => {};
    const close = element("button", { type: "button", textContent: "Close", onclick: () => this.onClose() });
    this.note = element("div", { className: "ol-note", role: "status" });
    this.list = element("tbody");
    this.root = element("section", { id: "ol-cameras", hidden: true, "aria-label": "Cameras" },
      element("h2", {}, element("span", { textContent: "Cameras" }), close),
      this.note,
      element("table", {}, this.list),
      this.buildForm(),
      this.buildFinder());
  }

  /** A request with a JSON body; answers {status, body} (body null when not JSON). */
  async call(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let answer;
    try {
      const request = this.request; // called unbound: fetch refuses another `this`
      answer = await request(path, init);
    } catch (error) {
      return { status: 0, body: { detail: `the service did not answer: ${error.message}` } };
    }
    const body_ = await answer.json().catch(() => null);
    return { status: answer.status, body: body_ };
  }

  say(text, ok = false) {
    this.note.textContent = text;
    this.note.classList.toggle("ok", ok);
  }

  /** Remember a note and reload: the wall then shows the cameras as they are now. */
  done(text) {
    sessionStorage.setItem(REOPEN, text);
    this.reload();
  }

  // the list ------------------------------------------------------------------------------------------

  async refresh() {
    const { status, body } = await this.call("GET", "/api/cameras");
    if (status !== 200) return this.say(refusalText(status, body));
    this.cameras = new Map(body.map((c) => [c.id, c]));
    this.list.replaceChildren(...body.map((camera) => this.row(camera)));
  }

  row(camera) {
    const actions = element("td");
    const result = element("div", { className: "ol-note" });
    if (camera.declared) {
      actions.append(element("span", { className: "ol-tag", textContent: "declared in cameras.yaml" }));
    } else {
      actions.append(
        element("button", { type: "button", textContent: "Edit", onclick: () => this.edit(camera) }),
        element("button", { type: "button", textContent: camera.enabled ? "Disable" : "Enable",
                            onclick: () => this.enable(camera, !camera.enabled) }),
        element("button", { type: "button", textContent: "Remove", onclick: () => this.remove(camera) }));
    }
    if (camera.enabled && camera.config?.talkback) {
      const test = element("button", { type: "button", textContent: "Test audio",
                                       title: "Play a short sweep on the camera's speaker and listen for it" });
      test.onclick = async () => {
        test.disabled = true;
        result.classList.remove("ok");
        result.textContent = "testing: a short sweep on the camera's speaker...";
        const { status, body } = await this.call("POST", `/api/cameras/${encodeURIComponent(camera.id)}/audio-test`);
        test.disabled = false;
        result.textContent = status === 200 ? audioTestText(body) : refusalText(status, body);
        result.classList.toggle("ok", status === 200);
      };
      actions.append(test);
    }
    actions.append(result);
    const state = camera.enabled ? (camera.state ?? "") : "disabled";
    return element("tr", { dataset: { camera: camera.id } },
      element("td", {}, element("b", { textContent: camera.name ?? camera.id }),
              element("div", { className: "ol-tag", textContent: `${camera.id} · ${state}` })),
      actions);
  }

  async enable(camera, enabled) {
    const { status, body } = await this.call("PATCH", `/api/cameras/${encodeURIComponent(camera.id)}`, { enabled });
    if (status !== 200) return this.say(refusalText(status, body));
    this.done(`${camera.id} ${enabled ? "enabled" : "disabled"}`);
  }

  async remove(camera) {
    if (!confirm(`Remove camera ${camera.name ?? camera.id}? Its recordings stay.`)) return;
    const { status, body } = await this.call("DELETE", `/api/cameras/${encodeURIComponent(camera.id)}`);
    if (status !== 204) return this.say(refusalText(status, body));
    this.done(`${camera.id} removed`);
  }

  // the form: add or edit --------------------------------------------------------------------------------

  buildForm() {
    this.inputs = {};
    this.errors = {};
    this.heading = element("h3", { textContent: "Add a camera" });
    const form = element("form", { id: "ol-camera-form", "aria-label": "Camera", noValidate: true });
    form.onsubmit = (event) => { event.preventDefault(); this.save(); };
    for (const field of FORM_FIELDS) {
      const input = element("input", { name: field.name, type: field.type ?? "text", autocomplete: "off",
                                       placeholder: field.hint ?? "" });
      const error = element("span", { className: "ol-error", dataset: { for: field.name } });
      this.inputs[field.name] = input;
      this.errors[field.name] = error;
      form.append(element("label", {}, element("span", { textContent: field.label }), input, error));
    }
    this.extra = {}; // fields an ONVIF import proposes beyond the form's (talkback, live_audio)
    this.probeOut = element("div", { className: "ol-probe" });
    this.testButton = element("button", { type: "button", textContent: "Test connection", onclick: () => this.test() });
    this.saveButton = element("button", { type: "submit", textContent: "Save" });
    this.cancelButton = element("button", { type: "button", textContent: "Cancel", hidden: true,
                                            onclick: () => this.clearForm() });
    form.append(element("div", {}, this.testButton, this.saveButton, this.cancelButton), this.probeOut);
    return element("div", {}, this.heading, form);
  }

  clearErrors() {
    for (const error of Object.values(this.errors)) error.textContent = "";
  }

  clearForm() {
    this.editing = null;
    this.extra = {};
    for (const input of Object.values(this.inputs)) input.value = "";
    this.inputs.id.disabled = false;
    this.inputs.password.placeholder = "";
    this.heading.textContent = "Add a camera";
    this.cancelButton.hidden = true;
    this.clearErrors();
    this.probeOut.replaceChildren();
  }

  edit(camera) {
    this.clearForm();
    const config = camera.config ?? {};
    this.editing = camera.id;
    this.editConfig = config;
    for (const name of Object.keys(this.inputs)) this.inputs[name].value = config[name] ?? "";
    this.inputs.id.disabled = true;
    this.inputs.password.placeholder = camera.password_set ? "unchanged" : "";
    this.heading.textContent = `Edit ${camera.name ?? camera.id}`;
    this.cancelButton.hidden = false;
    this.inputs.url.focus();
  }

  fill(config, password) {
    this.clearForm();
    for (const name of Object.keys(this.inputs)) {
      if (name !== "password" && config[name] != null) this.inputs[name].value = config[name];
    }
    this.inputs.password.value = password ?? "";
    this.extra = {};
    for (const name of ["talkback", "live_audio"]) if (name in config) this.extra[name] = config[name];
  }

  async test() {
    this.clearErrors();
    const value = (name) => this.inputs[name].value.trim();
    const body = { url: value("url") };
    if (value("username")) body.username = value("username");
    if (this.inputs.password.value) body.password = this.inputs.password.value;
    if (value("substream_url")) body.substream_url = value("substream_url");
    this.testButton.disabled = true;
    this.probeOut.replaceChildren(element("div", { className: "ol-note", textContent: "connecting (a few seconds)..." }));
    const { status, body: answer } = await this.call("POST", "/api/cameras/probe", body);
    this.testButton.disabled = false;
    if (status === 422 && answer?.fields) {
      this.showFieldErrors(answer.fields);
      return this.probeOut.replaceChildren();
    }
    if (status !== 200) {
      return this.probeOut.replaceChildren(element("div", { className: "ol-note", textContent: refusalText(status, answer) }));
    }
    const { found, problems } = probeSummary(answer);
    this.probeOut.replaceChildren(
      element("div", { className: `ol-note${answer.ok ? " ok" : ""}`, textContent: `Found: ${found}` }),
      problems.length ? element("ul", { className: "ol-problems" }, ...problems.map((p) => element("li", { textContent: p })))
                      : element("div", { className: "ol-note ok", textContent: "no problems" }));
  }

  showFieldErrors(fields) {
    const general = [];
    for (const [field, message] of Object.entries(fields)) {
      if (this.errors[field]) this.errors[field].textContent = message;
      else general.push(`${field}: ${message}`);
    }
    this.say(general.join("; "));
  }

  async save() {
    this.clearErrors();
    this.say("");
    const body = { ...(this.editing === null ? this.extra : {}) };
    for (const [name, input] of Object.entries(this.inputs)) {
      if (name === "id" && this.editing !== null) continue; // an id does not change
      const value = name === "password" ? input.value : input.value.trim();
      if (name === "password" && value === "") continue; // empty: unchanged (or none, for a new camera)
      if ((name === "name" || name === "username") && value === "" && this.editing === null) continue;
      if (this.editing !== null && value === (this.editConfig[name] ?? "")) continue; // only what changed
      body[name] = name === "substream_url" && value === "" ? null : value;
    }
    if (this.editing === null && body.name === undefined && body.id) body.name = body.id;
    this.saveButton.disabled = true;
    const { status, body: answer } = this.editing === null
      ? await this.call("POST", "/api/cameras", body)
      : await this.call("PATCH", `/api/cameras/${encodeURIComponent(this.editing)}`, body);
    this.saveButton.disabled = false;
    if (status === 200 || status === 201) return this.done(`${answer.id} saved`);
    if (answer?.fields) return this.showFieldErrors(answer.fields);
    this.say(refusalText(status, answer));
  }

  // finding ONVIF cameras -----------------------------------------------------------------------------

  buildFinder() {
    this.probeAddress = element("input", { name: "probe_address", placeholder: "host:port (empty: the local network)" });
    this.onvifUser = element("input", { name: "onvif_username", autocomplete: "off" });
    this.onvifPassword = element("input", { name: "onvif_password", type: "password", autocomplete: "off" });
    this.findButton = element("button", { type: "button", textContent: "Find cameras", onclick: () => this.find() });
    this.found = element("div", { className: "ol-found" });
    const params = new URLSearchParams(location.search);
    if (params.get("probe")) this.probeAddress.value = params.get("probe"); // e.g. a simulator's discovery port
    return element("div", {},
      element("h3", { textContent: "Find ONVIF cameras" }),
      element("form", { onsubmit: (e) => { e.preventDefault(); this.find(); } },
        element("label", {}, element("span", { textContent: "Camera user" }), this.onvifUser),
        element("label", {}, element("span", { textContent: "Camera password" }), this.onvifPassword),
        element("details", { open: Boolean(this.probeAddress.value) }, element("summary", { textContent: "Advanced" }),
          element("label", { title: "Send the discovery probe to one address (unicast) rather than the local network" },
            element("span", { textContent: "Probe address" }), this.probeAddress)),
        this.findButton),
      this.found);
  }

  async find() {
    const address = this.probeAddress.value.trim();
    this.findButton.disabled = true;
    this.found.replaceChildren(element("div", { className: "ol-note", textContent: "looking for cameras..." }));
    const { status, body } = await this.call("POST", "/api/onvif/discover", address ? { address } : {});
    this.findButton.disabled = false;
    if (status !== 200) {
      return this.found.replaceChildren(element("div", { className: "ol-note", textContent: refusalText(status, body) }));
    }
    if (!body.devices.length) {
      return this.found.replaceChildren(element("div", { className: "ol-note",
        textContent: `no ONVIF camera answered ${body.multicast ? "on the local network" : body.address}` }));
    }
    this.found.replaceChildren(element("table", {}, element("tbody", {}, ...body.devices.map((device) => {
      const out = element("div", { className: "ol-note" });
      const add = element("button", { type: "button", textContent: "Add", disabled: !device.host });
      add.onclick = () => this.importDevice(device, add, out);
      return element("tr", { dataset: { device: device.name ?? device.endpoint } },
        element("td", {}, element("b", { textContent: device.name ?? "(no name)" }),
                element("div", { className: "ol-tag", textContent: `${device.hardware ?? ""} ${device.xaddrs.join(" ")}` })),
        element("td", {}, add, out));
    }))));
  }

  async importDevice(device, button, out) {
    const body = { host: device.host, port: device.port };
    if (this.onvifUser.value.trim()) body.username = this.onvifUser.value.trim();
    if (this.onvifPassword.value) body.password = this.onvifPassword.value;
    button.disabled = true;
    out.textContent = "asking the camera what it streams...";
    const { status, body: answer } = await this.call("POST", "/api/onvif/import", body);
    button.disabled = false;
    if (status !== 200) {
      out.textContent = refusalText(status, answer);
      return;
    }
    out.textContent = "";
    this.fill(answer.camera, body.password);
    const streams = answer.profiles.map((p) => `${p.name} ${p.width}x${p.height} ${p.encoding}`).join(", ");
    this.probeOut.replaceChildren(element("div", { className: "ol-note ok",
      textContent: `From ONVIF: ${answer.name}${streams ? ` (${streams})` : ""}; talk: ${answer.talkback ? "yes" : "no"}` }),
      ...answer.warnings.map((w) => element("div", { className: "ol-note", textContent: w })));
    this.heading.scrollIntoView({ block: "nearest" });
  }
}
