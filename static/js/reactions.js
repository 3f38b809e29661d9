// Reactions: a chip toggles the reader's own (`PUT`/`DELETE …/reactions/{emoji}`), and the
// picker adds one: a row of common emoji, or any emoji typed in, checked here as the server
// checks it (the server's own refusal shows in the picker otherwise).

import { api } from "./api.js";
import { messageChanged } from "./messages.js";
import { limited } from "./outbox.js";
import { $ } from "./dom.js";
import { nameOf, reactedByMe, state } from "./state.js";

/** The picker's row: emoji and their names (read out, and shown on hover). */
export const COMMON = [
  ["👍", "thumbs up"],
  ["❤️", "red heart"],
  ["😂", "face with tears of joy"],
  ["🎉", "party popper"],
  ["😮", "face with open mouth"],
  ["😢", "crying face"],
  ["🙏", "folded hands"],
  ["🔥", "fire"],
  ["👀", "eyes"],
  ["✅", "check mark"],
  ["👏", "clapping hands"],
  ["🚀", "rocket"],
];

/** Most Unicode scalar values in a reaction. */
const MAX_EMOJI_CHARS = 8;
/** What may not be in a reaction: ASCII, whitespace, control characters. */
const NOT_EMOJI = /[\u0000-\u007f]|\p{White_Space}|\p{Cc}/u;
/** What one of its characters must be: pictographic, or a regional indicator (flags). */
const PICTOGRAPHIC = /\p{Extended_Pictographic}|[\u{1F1E6}-\u{1F1FF}]/u;

/**
 * Whether the server takes `text` as a reaction: 1 to 8 scalar values, none ASCII,
 * whitespace or a control character, at least one pictographic or a regional indicator.
 */
export function validEmoji(text) {
  const n = [...text].length;
  return n >= 1 && n <= MAX_EMOJI_CHARS && !NOT_EMOJI.test(text) && PICTOGRAPHIC.test(text);
}

/**
 * Adds (`add` true) or takes back the reader's reaction `emoji` on message `id` of `room`;
 * resolves to null, or the error the server answered. The answer's list is the message's
 * unless the stream brought a change of it meanwhile (then the stream is the newer word).
 */
export async function setReaction(roomName, id, emoji, add) {
  const room = state.rooms.get(roomName);
  const msg = room && room.messages.get(id);
  if (!msg) return null;
  const before = msg.changes;
  try {
    const data = await api(
      add ? "PUT" : "DELETE",
      `/api/rooms/${roomName}/messages/${id}/reactions/${encodeURIComponent(emoji)}`,
    );
    if (room.messages.get(id) === msg && msg.changes === before && Array.isArray(data.reactions)) {
      msg.reactions = data.reactions;
      if (roomName === state.current) messageChanged(id);
    }
    return null;
  } catch (err) {
    if (err.status === 429) limited(err);
    return err;
  }
}

/** Whether the reader holds `emoji` on `msg`. */
function holds(msg, emoji) {
  const r = msg.reactions.find((x) => x.emoji === emoji);
  return !!r && reactedByMe(r);
}

/** A sentence for an error of a reaction request. */
function reactionError(err) {
  if (err.status === 429) return "Too many reactions at once: wait a moment and try again.";
  if (err.code === "unknown_message") return "That message is gone: it was deleted.";
  return err.message;
}

/** Chips whose request is on its way (`room id emoji`): a second click waits for the first. */
const toggling = new Set();

/**
 * A chip was chosen: the reader's reaction goes when held, else is added. Resolves to the
 * error's sentence, or null.
 */
export async function toggleReaction(id, emoji) {
  const roomName = state.current;
  const msg = roomName && state.rooms.get(roomName).messages.get(id);
  const key = `${roomName} ${id} ${emoji}`;
  if (!msg || toggling.has(key)) return null;
  toggling.add(key);
  try {
    const err = await setReaction(roomName, id, emoji, !holds(msg, emoji));
    return err ? reactionError(err) : null;
  } finally {
    toggling.delete(key);
  }
}

// ---- the picker ----

/** What the open picker reacts to: `{room, id, opener}`. */
let target = null;

function picker() {
  return $("picker");
}

/** Draws the row of common emoji once. */
function drawCommon() {
  const row = $("picker-common");
  if (row.childElementCount) return;
  for (const [emoji, name] of COMMON) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "picker-emoji";
    b.dataset.emoji = emoji;
    b.textContent = emoji;
    b.title = name;
    b.setAttribute("aria-label", name);
    row.append(b);
  }
}

/**
 * Opens the picker for message `id` of the room on screen, next to `opener` (on a phone, at
 * the bottom of the screen). The focus starts on the first emoji and goes back to `opener`
 * (or, when that was drawn again meanwhile, the message's own controls) when it closes.
 */
export function openPicker(id, opener) {
  const room = state.current && state.rooms.get(state.current);
  const msg = room && room.messages.get(id);
  if (!msg) return;
  drawCommon();
  target = { room: room.name, id, opener };
  for (const b of $("picker-common").children) {
    b.setAttribute("aria-pressed", String(holds(msg, b.dataset.emoji)));
  }
  $("picker-input").value = "";
  pickerError("");
  $("picker-for").textContent = `${nameOf(msg.user)}'s message`;
  const dialog = picker();
  dialog.showModal();
  place(dialog, opener);
  $("picker-common").firstElementChild.focus();
}

/** Next to the opener, inside the window; a phone's sheet is placed by the style sheet. */
function place(dialog, opener) {
  dialog.style.left = "";
  dialog.style.top = "";
  if (matchMedia("(max-width: 640px)").matches || !opener) return;
  const r = opener.getBoundingClientRect();
  const w = dialog.offsetWidth;
  const h = dialog.offsetHeight;
  const left = Math.min(Math.max(8, r.right - w), window.innerWidth - w - 8);
  const below = r.bottom + 6;
  const top = below + h <= window.innerHeight - 8 ? below : Math.max(8, r.top - h - 6);
  dialog.style.left = `${left}px`;
  dialog.style.top = `${top}px`;
}

function pickerError(text) {
  $("picker-error").textContent = text;
  const input = $("picker-input");
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** Closes the picker; the focus goes back where it came from. */
function closePicker() {
  const t = target;
  target = null;
  if (picker().open) picker().close();
  if (!t) return;
  if (t.opener && t.opener.isConnected) {
    t.opener.focus();
    return;
  }
  // The opener was drawn again (its message changed): the same control of the new drawing.
  const li = document.querySelector(`#messages li.msg[data-id="${t.id}"]`);
  const cls = t.opener.classList.contains("reaction-add") ? ".reaction-add" : ".msg-react";
  const same = li && li.querySelector(cls);
  if (same) same.focus();
  else if (li) li.focus();
}

/** An emoji was chosen in the picker: toggled (common ones) or added (typed ones). */
async function choose(emoji, toggle) {
  const t = target;
  if (!t) return;
  const room = state.rooms.get(t.room);
  const msg = room && room.messages.get(t.id);
  if (!msg) {
    pickerError("That message is gone: it was deleted.");
    return;
  }
  const add = toggle ? !holds(msg, emoji) : true;
  const err = await setReaction(t.room, t.id, emoji, add);
  if (target !== t) return;
  if (err) {
    pickerError(`Not added: ${reactionError(err)}`);
    return;
  }
  closePicker();
}

$("picker-common").addEventListener("click", (e) => {
  const b = e.target instanceof Element ? e.target.closest("button[data-emoji]") : null;
  if (b) choose(b.dataset.emoji, true);
});
// Arrow keys move along the row (Tab leaves it for the free input).
$("picker-common").addEventListener("keydown", (e) => {
  const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  if (!(e.key in keys) && e.key !== "Home" && e.key !== "End") return;
  const buttons = [...$("picker-common").children];
  const at = buttons.indexOf(document.activeElement);
  const n = buttons.length;
  const next = e.key === "Home" ? 0 : e.key === "End" ? n - 1 : (at + keys[e.key] + n) % n;
  buttons[next].focus();
  e.preventDefault();
});
$("picker-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("picker-input").value.trim();
  if (!validEmoji(text)) {
    pickerError(
      text
        ? "That is not an emoji: a reaction is one emoji (up to 8 characters, like 👍, 🇫🇷 or 👩‍💻), not text."
        : "Type or paste an emoji first.",
    );
    $("picker-input").focus();
    return;
  }
  pickerError("");
  choose(text, false);
});
$("picker-input").addEventListener("input", () => {
  if ($("picker-input").getAttribute("aria-invalid") === "true") pickerError("");
});
$("picker-close").addEventListener("click", () => closePicker());
picker().addEventListener("cancel", (e) => {
  // Escape: closed here, so the focus goes back as it should.
  e.preventDefault();
  closePicker();
});
// A click outside the picker's box closes it.
picker().addEventListener("click", (e) => {
  if (e.target !== picker()) return;
  const r = picker().getBoundingClientRect();
  const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
  if (!inside) closePicker();
});
