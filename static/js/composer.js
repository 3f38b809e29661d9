// The message box: sending (through the outbox, with the reply being written), the character
// counter, the room's draft, the `typing` event, growing with its text.

import { api } from "./api.js";
import { enqueue, limited, quiet } from "./outbox.js";
import { $ } from "./dom.js";
import { renderReplyBar } from "./reply.js";
import {
  COUNTER_FROM,
  MESSAGE_CHARS,
  TYPING_SEND_MS,
  draftOf,
  saveDraft,
  state,
} from "./state.js";

const numberFmt = new Intl.NumberFormat();

/** Characters as the server counts them: code points, after trimming. */
export function charCount(text) {
  return [...text.trim()].length;
}

/** Shows (or clears) the error under the box; the box is marked invalid while it shows. */
export function composerError(text, invalid = false) {
  $("composer-error").textContent = text;
  const input = $("composer-input");
  if (invalid) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** "This message is 4,100 characters long; the limit is 4,000. Shorten it by 100 (…)". */
export function tooLong(n) {
  return (
    `This message is ${numberFmt.format(n)} characters long; the limit is ${numberFmt.format(MESSAGE_CHARS)}. ` +
    `Shorten it by ${numberFmt.format(n - MESSAGE_CHARS)} (or send it in parts)`
  );
}

/**
 * Queues the box's text for the current room (answering the message replied to, if any) and
 * empties the box; a text over the limit is refused, with the reason, and stays in the box.
 */
export function send() {
  const input = $("composer-input");
  const body = input.value;
  const room = state.current;
  if (!room || !body.trim()) return;
  const n = charCount(body);
  if (n > MESSAGE_CHARS) {
    composerError(`${tooLong(n)}: nothing was sent.`, true);
    input.focus();
    return;
  }
  composerError("");
  input.value = "";
  saveDraft(room, "");
  state.lastTypingSent = 0; // the next keystroke is news again
  autosize();
  renderCounter();
  const replyTo = state.replyTo.get(room) || null;
  state.replyTo.delete(room);
  renderReplyBar();
  enqueue(room, body, replyTo);
}

/**
 * The counter `el` for `text`: "1,234 / 4,000" once the text nears the limit; over it, how
 * much too long. True when it is over.
 */
export function counterText(el, text) {
  const n = charCount(text);
  const show = n >= MESSAGE_CHARS - COUNTER_FROM;
  el.hidden = !show;
  el.classList.toggle("over", n > MESSAGE_CHARS);
  if (!show) {
    el.textContent = "";
    return false;
  }
  el.textContent =
    n > MESSAGE_CHARS
      ? `${numberFmt.format(n)} / ${numberFmt.format(MESSAGE_CHARS)}: ${numberFmt.format(n - MESSAGE_CHARS)} too many`
      : `${numberFmt.format(n)} / ${numberFmt.format(MESSAGE_CHARS)}`;
  return n > MESSAGE_CHARS;
}

/** The message box's counter (see `counterText`). */
export function renderCounter() {
  const over = counterText($("composer-count"), $("composer-input").value);
  // Back under the limit: the refusal no longer holds.
  if (!over && $("composer-input").getAttribute("aria-invalid") === "true") {
    composerError("");
  }
}

/** The box changed: keep it as the room's draft, count, grow, tell the room. */
export function onInput() {
  saveDraft(state.current, $("composer-input").value);
  autosize();
  renderCounter();
  typing();
}

/** Puts the draft of the room now on screen in the box. */
export function loadDraft() {
  const input = $("composer-input");
  input.value = state.current ? draftOf(state.current) : "";
  composerError("");
  autosize();
  renderCounter();
}

/**
 * Tells the room we are typing, at most once per `TYPING_SEND_MS`, and never while a post
 * waits or the rate limit holds: a typing event must not take a message's place.
 */
export function typing() {
  const now = Date.now();
  const text = $("composer-input").value.trim();
  if (!state.current || !text || now - state.lastTypingSent < TYPING_SEND_MS || !quiet()) return;
  state.lastTypingSent = now;
  api("POST", `/api/rooms/${state.current}/events`, { event: "typing", data: {} }).catch((err) => {
    if (err.status === 429) limited(err);
  });
}

/** Grows the box with its text, up to 160px. */
export function autosize() {
  const input = $("composer-input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}
