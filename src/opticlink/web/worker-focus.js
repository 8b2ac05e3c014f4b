// The player Worker's share of the wall: whether its camera is heard and whether its tile is seen.
//
// A muted player spends next to nothing on sound: audio frames are counted and their lateness
// measured (latency.js Arrivals, so that the sound starts with a buffer that covers it once the
// camera is heard), but neither decoded nor written to the ring, the worklet idles (RATE 0 in a new generation: it outputs silence without resampling)
// and video runs on the wall clock, as for a camera without audio. Unmuting sets the audio up again
// on the same WebSocket. A player whose tile is not seen drops video before decoding and resumes at
// the next keyframe. A tile narrower than KEYFRAMES_ONLY_BELOW_PX (`size` messages, device pixels)
// decodes keyframes only. live-worker.js calls `focusMessage` for `audible` / `visible` / `size`
// messages and the two hooks at the top of its onAudio and onVideo.
import { CONTROL } from "./ring.js";
import { KEYFRAMES_ONLY_BELOW_PX } from "./frames.js";

export const focus = {
  audible: true,
  visible: true,
  keyframesOnly: false, // a tile too small to show motion (frames.js leaveUndecoded)
  track: null, // the audio track set aside while muted, for setupAudio when heard again
  socket: null, // the WebSocket the latest video came on: a new one counts a connection
  tools: null, // the Worker's { setupAudio, setCtl, ctl }, from the first message
};

/** `{type: "audible", audible}` or `{type: "visible", visible}` from the page; `tools`: the Worker's
 *  { setupAudio, setCtl, ctl }. */
export function focusMessage(message, state, tools) {
  focus.tools = tools;
  if (message.type === "size") { // the tile's width in device pixels
    const keyframesOnly = message.width > 0 && message.width < KEYFRAMES_ONLY_BELOW_PX;
    if (focus.keyframesOnly && !keyframesOnly) state.waitingKey = true; // motion resumes at the next keyframe
    focus.keyframesOnly = state.stats.keyframesOnly = keyframesOnly;
    return;
  }
  if (message.type === "visible") {
    const visible = message.visible !== false;
    if (visible && !focus.visible) state.waitingKey = true; // decoding resumes at the next keyframe
    focus.visible = state.stats.visible = visible;
    return;
  }
  const audible = message.audible !== false;
  state.stats.audible = audible;
  if (audible === focus.audible) return;
  focus.audible = audible;
  if (!audible) return silence(state, tools);
  const track = focus.track ?? state.config?.tracks.find((t) => t.kind === "audio");
  focus.track = null;
  if (track && !state.audio) tools.setupAudio(track); // a new generation: starts after its warm-up
}

/** Set the sound aside: close its decoder, idle the worklet, let video follow the wall clock. */
function silence(state, tools) {
  const audio = state.audio;
  if (!audio) return;
  if (audio.decoder && audio.decoder.state !== "closed") audio.decoder.close();
  focus.track = state.config?.tracks.find((t) => t.kind === "audio") ?? null;
  state.audio = null;
  const waiting = (tools.ctl(CONTROL.WRITE) - tools.ctl(CONTROL.READ)) | 0;
  tools.setCtl(CONTROL.RATE, 0);
  tools.setCtl(CONTROL.STATE, 0);
  tools.setCtl(CONTROL.GENERATION, tools.ctl(CONTROL.GENERATION) + 1);
  if (waiting > 0) tools.setCtl(CONTROL.SKIP, waiting); // what was buffered is not heard later
  state.stats.bufferMs = 0;
  state.stats.trimPercent = 0;
  state.stats.clock = "wall"; // until present() says so itself (not at all while not seen)
}

/** onAudio's hook: true when the frame was handled here (muted: counted, not decoded). A
 *  configuration that set audio up again while muted (a reconnection) is set aside again. */
export function mutedAudio(state) {
  if (focus.audible) return false;
  if (state.audio) silence(state, focus.tools);
  state.stats.audioFrames++;
  state.stats.audioMuted++;
  return true;
}

/** onVideo's hook: counts connections; true when the frame is dropped before decoding (not seen). */
export function unseenVideo(state) {
  if (state.socket !== focus.socket) {
    focus.socket = state.socket;
    state.stats.connections = (state.stats.connections || 0) + 1;
  }
  if (focus.visible) return false;
  state.stats.framesReceived++;
  state.stats.framesUnseen = (state.stats.framesUnseen || 0) + 1;
  state.waitingKey = true;
  return true;
}
