// The message box: sending, the `typing` event, growing with its text.

import { api } from "./api.js";
import { $ } from "./render.js";
import { onMessage } from "./rooms.js";
import { TYPING_SEND_MS, state } from "./state.js";

/** Posts the composer's text to the current room; on failure puts it back with the error. */
export async function send() {
  const input = $("composer-input");
  const body = input.value;
  const room = state.current;
  if (!room || !body.trim()) return;
  $("composer-error").textContent = "";
  input.value = "";
  state.lastTypingSent = 0; // the next keystroke is news again
  autosize();
  try {
    const data = await api("POST", `/api/rooms/${room}/messages`, { body });
    onMessage(data.message, false);
  } catch (err) {
    if (state.current === room && !input.value) {
      input.value = body;
      autosize();
    }
    $("composer-error").textContent = err.message;
  }
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
