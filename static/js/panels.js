// What opens over the chat: the confirmation dialog, the room directory, the admin panel,
// the rooms and people panels on a phone, and the undo toast. Each gives the focus back to
// where it came from when it closes; Escape closes the one on top.

import { api } from "./api.js";
import { $ } from "./dom.js";
import { ROOM_RE, state } from "./state.js";

/** Phones: the rooms and people panels are overlays there. */
export const phone = matchMedia("(max-width: 640px)");

// ---- confirmation ----

/**
 * Asks before something that cannot be taken back: resolves true when `ok` was chosen. The
 * focus starts on Cancel and returns to where it was.
 */
export function confirmAction({ title, text, ok }) {
  const dialog = $("confirm");
  const back = document.activeElement;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const yes = dialog.returnValue === "ok";
        // Unless the caller moves it (e.g. the thing confirmed is gone), back where it was.
        if (back && back.isConnected && typeof back.focus === "function") back.focus();
        resolve(yes);
      },
      { once: true },
    );
  });
}

// ---- dialogs with a close button (directory, admin) ----

/**
 * Opens `dialog` modally; on close the focus goes back to `opener`, unless what the dialog
 * did put it somewhere else (e.g. in the room just joined).
 */
export function openDialog(dialog, opener) {
  dialog.showModal();
  dialog.addEventListener(
    "close",
    () => {
      const now = document.activeElement;
      const lost = !now || now === document.body || dialog.contains(now);
      if (lost && opener && opener.isConnected) opener.focus();
    },
    { once: true },
  );
}

for (const button of document.querySelectorAll("dialog .dialog-close")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}
// A click on the backdrop (outside the dialog's box) closes it too.
for (const dialog of document.querySelectorAll("dialog.dialog:not(.confirm)")) {
  dialog.addEventListener("click", (e) => {
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    const inside =
      e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
    if (!inside) dialog.close();
  });
}

// ---- the room directory ----

let directoryRooms = [];

/** Opens "Find a room": the rooms with people in them now (and the user's own). */
export async function openDirectory(opener) {
  const dialog = $("directory");
  openDialog(dialog, opener);
  const search = $("directory-search");
  search.value = "";
  search.focus();
  $("directory-status").textContent = "Loading rooms…";
  $("directory-list").replaceChildren();
  try {
    const data = await api("GET", "/api/rooms?limit=500");
    const byName = new Map(data.rooms.map((r) => [r.name, r]));
    for (const [name, info] of state.myRooms) {
      if (!byName.has(name)) byName.set(name, { name, users: 0, subscribers: 0, visibility: info.visibility });
    }
    directoryRooms = [...byName.values()];
  } catch (err) {
    $("directory-status").textContent = `The rooms could not be read: ${err.message}`;
    return;
  }
  renderDirectory();
}

/** The directory's list, filtered by the search box. */
export function renderDirectory() {
  const query = $("directory-search").value.trim().toLowerCase().replace(/^#/, "");
  const shown = directoryRooms.filter((r) => r.name.includes(query));
  const items = shown.map((r) => {
    const li = document.createElement("li");
    li.className = "directory-room";
    const name = document.createElement("span");
    name.className = "directory-name";
    name.textContent = `#${r.name}`;
    const meta = document.createElement("span");
    meta.className = "directory-meta";
    const people = `${r.users} ${r.users === 1 ? "person" : "people"} here`;
    meta.textContent = r.visibility === "private" ? `${people} · private` : people;
    const joined = state.rooms.has(r.name);
    const b = document.createElement("button");
    b.type = "button";
    b.className = "directory-join";
    b.dataset.room = r.name;
    b.textContent = joined ? "Open" : "Join";
    b.setAttribute("aria-label", `${joined ? "Open" : "Join"} #${r.name}`);
    li.append(name, meta, b);
    return li;
  });
  // A name nobody is in yet: joining it starts it.
  if (query && ROOM_RE.test(query) && !directoryRooms.some((r) => r.name === query)) {
    const li = document.createElement("li");
    li.className = "directory-room directory-new";
    const name = document.createElement("span");
    name.className = "directory-name";
    name.textContent = `#${query}`;
    const meta = document.createElement("span");
    meta.className = "directory-meta";
    meta.textContent = "nobody here yet";
    const b = document.createElement("button");
    b.type = "button";
    b.className = "directory-join";
    b.dataset.room = query;
    b.textContent = "Join";
    b.setAttribute("aria-label", `Join #${query}`);
    li.append(name, meta, b);
    items.push(li);
  }
  $("directory-list").replaceChildren(...items);
  const n = shown.length;
  $("directory-status").textContent = query
    ? `${n} room${n === 1 ? "" : "s"} match “${query}”.`
    : `${n} room${n === 1 ? "" : "s"}, busiest first.`;
}

// ---- the rooms and people panels (overlays on a phone) ----

let panelOpener = null;

/** Opens panel `id` over the chat (phones only); the focus moves into it. */
export function openPanel(id, opener) {
  closePanels(false);
  const panel = $(id);
  panel.classList.add("open");
  $("scrim").hidden = false;
  for (const t of document.querySelectorAll(`[aria-controls="${id}"]`)) {
    t.setAttribute("aria-expanded", "true");
  }
  panelOpener = opener;
  const current = panel.querySelector("li.current");
  if (current) current.scrollIntoView({ block: "nearest" });
  panel.querySelector(".panel-close").focus();
}

/** Closes the open panel; the focus goes back to its toggle when `refocus`. */
export function closePanels(refocus = true) {
  const open = document.querySelector(".panel.open");
  if (!open) return false;
  open.classList.remove("open");
  $("scrim").hidden = true;
  for (const t of document.querySelectorAll(`[aria-controls="${open.id}"]`)) {
    t.setAttribute("aria-expanded", "false");
  }
  if (refocus && panelOpener && panelOpener.isConnected) panelOpener.focus();
  panelOpener = null;
  return true;
}

/** Whether panel `id` is in sight (always on a wide screen; when opened on a phone). */
export function panelShown(id) {
  return !phone.matches || $(id).classList.contains("open");
}

phone.addEventListener("change", () => closePanels(false));

// ---- the undo toast ----

let toastTimer = null;
let toastUndo = null;

/** "You left #room. Undo" for a few seconds; `undo` runs when Undo is chosen. */
export function showToast(text, undo) {
  clearTimeout(toastTimer);
  $("toast-text").textContent = text;
  $("toast").hidden = false;
  toastUndo = undo;
  toastTimer = setTimeout(hideToast, 10_000);
}

export function hideToast() {
  clearTimeout(toastTimer);
  $("toast").hidden = true;
  toastUndo = null;
}

$("toast-undo").addEventListener("click", () => {
  const undo = toastUndo;
  hideToast();
  if (undo) undo();
});
$("toast-close").addEventListener("click", () => {
  hideToast();
  $("composer-input").focus();
});
