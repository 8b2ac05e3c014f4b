// A camera's audio preferences, for an admin: a "⚙" button beside the camera's title opens a small
// form (live audio, record audio, talk, half duplex, audio offset). Each change is sent at once
// (PATCH /api/cameras/{id}/settings) and takes effect on the running camera; the form then shows
// the settings in effect, as the server answers them. Plain ES module; the page adds it for admins.

export const FIELDS = [
  { name: "live_audio", label: "Live audio", title: "Viewers hear the camera" },
  { name: "record_audio", label: "Record audio", title: "Recordings keep the camera's sound (from the next segment)" },
  { name: "talkback", label: "Talk", title: "Viewers allowed to talk may talk to the camera's speaker" },
  { name: "half_duplex", label: "Half duplex", title: "The talker does not hear the camera while talking" },
];
export const OFFSET_LIMIT_MS = 2000;

/** The change an input asks for, or an error for an offset out of bounds (checked again by the server). */
export function changeOf(name, input) {
  if (name !== "audio_offset_ms") return { change: { [name]: Boolean(input) } };
  const value = Number(input);
  if (input === "" || !Number.isFinite(value)) return { error: "the offset is a number of milliseconds" };
  if (Math.abs(value) > OFFSET_LIMIT_MS) return { error: `the offset is at most ±${OFFSET_LIMIT_MS} ms` };
  return { change: { audio_offset_ms: value } };
}

/** The server's refusal as a sentence: FastAPI's `detail` is a string or a list of validation errors. */
export function refusalText(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) return detail.map((d) => d.msg).join("; ");
  return `the server answered ${status}`;
}

const STYLE = `
  .ol-settings-button { position: absolute; left: 6px; bottom: 4px; z-index: 2; font: 15px system-ui, sans-serif;
                        background: none; border: 0; color: #ddd; cursor: pointer; padding: 2px; line-height: 1;
                        text-shadow: 0 1px 2px #000; }
  .ol-settings-button[aria-expanded=true] { color: #9cf; }
  .title { padding-left: 22px; }
  .ol-settings { position: absolute; left: 8px; bottom: 30px; z-index: 2; display: grid; gap: 5px;
                 padding: 8px 10px; background: #111e; border: 1px solid #555; border-radius: 6px;
                 font: 13px system-ui, sans-serif; color: #eee; min-width: 190px; }
  .ol-settings[hidden] { display: none; }
  .ol-settings label { display: flex; gap: 6px; align-items: center; cursor: pointer; }
  .ol-settings input[type=number] { width: 72px; background: #222; color: #eee; border: 1px solid #666; }
  .ol-settings .ol-note { color: #ffcf6e; font-size: 12px; max-width: 220px; }
  .ol-settings .ol-note.ok { color: #9c9; }
`;

/** Add the settings button and form to a player (its open shadow root); returns the form element. */
export function addSettings(player, camera, { request = fetch } = {}) {
  const root = player.shadowRoot;
  const style = document.createElement("style");
  style.textContent = STYLE;
  const button = document.createElement("button");
  Object.assign(button, { type: "button", className: "ol-settings-button", textContent: "⚙",
                          title: "Audio settings of this camera" });
  button.setAttribute("aria-expanded", "false");
  const form = document.createElement("form");
  form.className = "ol-settings";
  form.hidden = true;
  form.setAttribute("aria-label", "Audio settings");
  for (const field of FIELDS) {
    const label = document.createElement("label");
    label.title = field.title;
    const input = Object.assign(document.createElement("input"), { type: "checkbox", name: field.name });
    label.append(input, field.label);
    form.append(label);
  }
  const offset = document.createElement("label");
  offset.title = "Positive delays the camera's sound (a camera that stamps it early)";
  const number = Object.assign(document.createElement("input"), {
    type: "number", name: "audio_offset_ms", min: -OFFSET_LIMIT_MS, max: OFFSET_LIMIT_MS, step: 10 });
  offset.append("Audio offset", number, "ms");
  const note = document.createElement("div");
  note.className = "ol-note";
  note.setAttribute("role", "status");
  form.append(offset, note);
  root.append(style, button, form);

  const url = `/api/cameras/${encodeURIComponent(camera)}/settings`;
  const say = (text, ok = false) => { note.textContent = text; note.classList.toggle("ok", ok); };
  const show = (settings) => {
    for (const field of FIELDS) form.elements[field.name].checked = Boolean(settings[field.name]);
    number.value = String(settings.audio_offset_ms);
    form.dataset.loaded = "true";
  };
  const load = async () => {
    const answer = await request(url);
    if (!answer.ok) throw new Error(refusalText(answer.status, await answer.json().catch(() => null)));
    show(await answer.json());
  };

  button.addEventListener("click", async () => {
    form.hidden = !form.hidden;
    button.setAttribute("aria-expanded", String(!form.hidden));
    if (form.hidden) return;
    say("");
    try { await load(); } catch (error) { say(`could not read the settings: ${error.message}`); }
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", async (event) => {
    const input = event.target;
    const { change, error } = changeOf(input.name, input.type === "checkbox" ? input.checked : input.value);
    if (error) { say(error); return; }
    say("saving…");
    try {
      const answer = await request(url, { method: "PATCH", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify(change) });
      const body = await answer.json().catch(() => null);
      if (!answer.ok) throw new Error(refusalText(answer.status, body));
      show(body);
      say("saved: in effect now", true);
    } catch (failure) {
      say(`not saved: ${failure.message}`);
      load().catch(() => {}); // show what is in effect
    }
  });
  return form;
}
