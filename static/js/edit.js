// Editing one's own message in place: its body becomes a box with the same limit and counter
// as the message box; Enter saves (`PATCH`), Shift+Enter starts a new line, Escape cancels.
// One message at a time; the box survives the message being drawn again (scrolling far away
// and back, switching rooms), with what was typed in it.

import { api } from "./api.js";
import { charCount, counterText, tooLong } from "./composer.js";
import { Autocomplete } from "./mentions.js";
import { bodyBack, drawEditorWith, messageChanged, messageLi } from "./messages.js";
import { limited } from "./outbox.js";
import { $ } from "./dom.js";
import { MESSAGE_CHARS, me, state } from "./state.js";

let seq = 0;

/** The edit box of `msg` (being edited), with what was typed in it so far. */
export function editorFor(msg) {
  const editing = state.editing;
  const n = ++seq;
  const form = document.createElement("form");
  form.className = "msg-editor";
  form.noValidate = true;
  const label = document.createElement("label");
  label.className = "visually-hidden";
  label.htmlFor = `edit-input-${n}`;
  label.textContent = "Editing your message";
  const wrap = document.createElement("div");
  wrap.className = "mention-wrap";
  const input = document.createElement("textarea");
  input.id = `edit-input-${n}`;
  input.className = "edit-input";
  input.rows = 1;
  input.value = editing ? editing.text : msg.body;
  input.setAttribute("aria-describedby", `edit-help-${n} edit-count-${n} edit-error-${n}`);
  const list = document.createElement("ul");
  list.className = "mention-list";
  list.id = `edit-mentions-${n}`;
  wrap.append(input, list);
  const row = document.createElement("div");
  row.className = "edit-row";
  const count = document.createElement("p");
  count.className = "composer-count edit-count";
  count.id = `edit-count-${n}`;
  count.hidden = true;
  const help = document.createElement("p");
  help.className = "hint edit-help";
  help.id = `edit-help-${n}`;
  help.textContent = "Enter saves, Escape cancels, Shift+Enter starts a new line.";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "edit-cancel quiet";
  cancel.textContent = "Cancel";
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "edit-save primary";
  save.textContent = "Save";
  row.append(count, help, cancel, save);
  const error = document.createElement("p");
  error.className = "field-error edit-error";
  error.id = `edit-error-${n}`;
  error.setAttribute("aria-live", "assertive");
  form.append(label, wrap, row, error);

  const changed = () => {
    if (state.editing && state.editing.id === msg.id) state.editing.text = input.value;
    grow(input);
    const over = counterText(count, input.value);
    if (!over && input.getAttribute("aria-invalid") === "true") showError(form, "");
  };
  const complete = new Autocomplete(input, list, changed);
  input.addEventListener("input", changed);
  input.addEventListener("keydown", (e) => {
    if (complete.onKey(e)) return;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      saveEdit(form);
    } else if (e.key === "Escape") {
      e.preventDefault();
      cancelEdit();
    }
  });
  cancel.addEventListener("click", () => cancelEdit());
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    saveEdit(form);
  });
  form.dataset.id = String(msg.id);
  counterText(count, input.value);
  // Sized once it is in the page.
  requestAnimationFrame(() => grow(input));
  return form;
}
// messages.js draws the editor of the message being edited whenever it redraws that row.
drawEditorWith(editorFor);

/** Grows an edit box with its text, up to 240px. */
function grow(input) {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, 240)}px`;
}

function showError(form, text) {
  form.querySelector(".edit-error").textContent = text;
  const input = form.querySelector(".edit-input");
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/**
 * Opens the edit box of message `id` of the room on screen (the reader's own), or moves the
 * focus into it when it is open. `fromComposer`: the focus goes back to the message box when
 * it closes (Arrow Up in an empty box), else to the message's Edit.
 */
export function startEdit(id, fromComposer = false) {
  const room = state.current && state.rooms.get(state.current);
  const msg = room && room.messages.get(id);
  const li = messageLi(id);
  if (!msg || !li || msg.user.id !== me.id) return false;
  const open = state.editing;
  if (open && open.room === room.name && open.id === id) {
    const input = li.querySelector(".edit-input");
    if (input) input.focus();
    return true;
  }
  if (open) cancelEdit(false);
  const body = li.querySelector(":scope > .msg-body");
  if (!body) return false;
  state.editing = { room: room.name, id, text: msg.body, fromComposer };
  body.replaceWith(editorFor(msg));
  li.classList.add("editing");
  const input = li.querySelector(".edit-input");
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
  grow(input);
  return true;
}

/** Closes the edit box, forgetting what was typed in it; `refocus` puts the focus back. */
export function cancelEdit(refocus = true) {
  const e = state.editing;
  if (!e) return;
  state.editing = null;
  if (e.room !== state.current) return;
  bodyBack(e.id);
  const li = messageLi(e.id);
  if (li) li.classList.remove("editing");
  if (!refocus) return;
  const edit = li && li.querySelector(".msg-edit");
  if (!e.fromComposer && edit) edit.focus();
  else $("composer-input").focus();
}

/**
 * Message `id` of `room` went (deleted): an edit box open on it goes with it. True when there
 * was one (the caller says so).
 */
export function editGone(room, id) {
  const e = state.editing;
  if (!e || e.room !== room || e.id !== id) return false;
  state.editing = null;
  return true;
}

/** Saves the edit box `form`: checked as a post is, then `PATCH`ed. */
async function saveEdit(form) {
  const e = state.editing;
  const id = Number(form.dataset.id);
  if (!e || e.id !== id) return;
  const room = state.rooms.get(e.room);
  const msg = room && room.messages.get(id);
  const input = form.querySelector(".edit-input");
  const text = input.value;
  if (!msg) return;
  if (!text.trim()) {
    showError(form, "A message needs some text. To remove it, delete it instead.");
    input.focus();
    return;
  }
  const n = charCount(text);
  if (n > MESSAGE_CHARS) {
    showError(form, `${tooLong(n)}: nothing was saved.`);
    input.focus();
    return;
  }
  if (text.trim() === msg.body) {
    cancelEdit();
    return;
  }
  const save = form.querySelector(".edit-save");
  if (save.disabled) return;
  save.disabled = true;
  save.textContent = "Saving…";
  showError(form, "");
  const before = msg.changes;
  try {
    const data = await api("PATCH", `/api/rooms/${e.room}/messages/${id}`, { body: text });
    // Unless the stream already said what happened since (this edit, or a later one).
    if (msg.changes === before) {
      const m = data.message;
      const ids = room.applyEdit(
        { message_id: id, body: m.body, edited_at: m.edited_at, mentions: m.mentions },
        false,
      );
      if (e.room === state.current) for (const changed of ids) messageChanged(changed);
    }
  } catch (err) {
    save.disabled = false;
    save.textContent = "Save";
    if (err.status === 429) limited(err);
    const why =
      err.status === 429
        ? "Too many changes at once: wait a moment and press Enter again."
        : err.code === "unknown_message"
          ? "This message is gone: it was deleted."
          : err.message;
    if (form.isConnected) {
      showError(form, `Not saved: ${why}`);
      input.focus();
    }
    return;
  }
  // The focus goes back unless the reader moved it elsewhere meanwhile.
  const now = document.activeElement;
  if (state.editing === e) cancelEdit(!now || now === document.body || form.contains(now));
}
