// The message box: sending, the `typing` event, growing with its text.

import { api } from "./api.js";
import { $ } from "./render.js";
import { onMessage } from "./rooms.js";
import { TYPING_SEND_MS, state } from "./state.js";

/**
 * Posts the composer's text to the current room; on failure puts it back with the error.
 * When no answer came at all, the text is also kept as `state.pending`: the stream coming
 * back (see `sendPending`) sends it.
 */
export async function send() {
  const input = $("composer-input");
  const body = input.value;
  const room = state.current;
  if (!room || !body.trim()) return;
  $("composer-error").textContent = "";
  state.pending = null;
  input.value = "";
  state.lastTypingSent = 0; // the next keystroke is news again
  autosize();
  try {
    const data = await api("POST", `/api/rooms/${room}/messages`, { body });
    onMessage(data.message, false);
  } catch (err) {
    let message = err.message;
    if (state.current === room && !input.value) {
      input.value = body;
      autosize();
      if (err.code === "network") {
        state.pending = { room, body };
        message = `${err.message} Your message is kept and goes out when the connection is back.`;
      }
    }
    $("composer-error").textContent = message;
  }
}

/**
 * Sends the post kept by `send` when the server did not answer, if it is still in the box
 * of its room (edited, cleared or another room on screen: the reader decides, not us).
 */
export function sendPending() {
  const p = state.pending;
  if (!p) return;
  state.pending = null;
  if (state.current === p.room && $("composer-input").value === p.body) send();
}

/** Tells the room we are typing, at most once per `TYPING_SEND_MS`. */
export function typing() {
  const now = Date.now();
  const text = $("composer-input").value.trim();
  if (!state.current || !text || now - state.lastTypingSent < TYPING_SEND_MS) return;
  state.lastTypingSent = now;
  api("POST", `/api/rooms/${state.current}/events`, { event: "typing", data: {} }).catch(() => {});
}

/** Grows the box with its text, up to 160px. */
export function autosize() {
  const input = $("composer-input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}
