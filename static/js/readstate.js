// Read state: the room's read marker moves once its newest message has been seen (the page
// visible and the list at its newest), every other tab and device hears of it (`read`) and
// reads its counts again; the tab title carries the unread total; desktop notifications,
// when the user asked for them, for a mention or a message while the page is hidden.

import { api } from "./api.js";
import { me, mentionsMe, state } from "./state.js";

/** Whether the user can see the room on screen now. */
function seeing() {
  return document.visibilityState === "visible" && state.stick;
}

/**
 * Moves the marker of the room on screen to its newest message once that is seen: the
 * page visible and the list scrolled to the bottom. Only forward, only when it moves.
 */
export function markSeen() {
  const room = state.current && state.rooms.get(state.current);
  if (!room || !room.ids.length || !seeing()) return;
  const newest = room.ids[room.ids.length - 1];
  if (newest <= room.lastReadId) return;
  room.lastReadId = newest;
  sendMarker(room.name, newest);
}

/** Per room, the marker being sent and the one to send after it (a busy room: one at a time). */
const sending = new Map();

function sendMarker(name, id) {
  const s = sending.get(name);
  if (s) {
    s.next = Math.max(s.next, id);
    return;
  }
  sending.set(name, { next: 0 });
  api("PUT", `/api/rooms/${name}/read`, { last_read_id: id })
    .catch((err) => console.warn("moving the read marker failed", err))
    .finally(() => {
      const next = sending.get(name).next;
      sending.delete(name);
      if (next > id) sendMarker(name, next);
    });
}

let recount = null;
/** Set by app.js: redraws the room list once its counts were read again. */
let onRecounted = () => {};

/** What to do once the counts were read again (see app.js). */
export function whenRecounted(fn) {
  onRecounted = fn;
}

/**
 * A `read` event: a marker moved (in this tab, another one, or another device). The counts
 * are read again from the server, which knows every message above every marker.
 */
export function onRead(ev) {
  const room = state.rooms.get(ev.room);
  if (room && ev.last_read_id > room.lastReadId) room.lastReadId = ev.last_read_id;
  // Several events in a row (a tab catching up) cost one read.
  if (recount) return;
  recount = setTimeout(async () => {
    recount = null;
    try {
      const data = await api("GET", "/api/me/rooms");
      for (const r of data.rooms) {
        const known = state.rooms.get(r.name);
        if (!known) continue;
        known.lastReadId = Math.max(known.lastReadId, r.last_read_id);
        if (r.name === state.current && seeing()) continue;
        // Messages that came on the stream after the server counted are counted on top.
        const newer = known.ids
          .filter((id) => id > r.last_message_id && id > known.lastReadId)
          .map((id) => known.messages.get(id))
          .filter((m) => m && m.user.id !== me.id);
        known.unread = r.unread + newer.length;
        known.mentioned = r.mentions > 0 || newer.some(mentionsMe);
      }
      onRecounted();
    } catch (err) {
      console.warn("reading the room list failed", err);
    }
  }, 50);
}

/** `(N) roomcast` while N messages are unread, else `roomcast`. */
export function renderTitle(total) {
  document.title = total > 0 ? `(${total}) roomcast` : "roomcast";
}

/** Whether the browser can show desktop notifications at all. */
function notifications() {
  return typeof Notification !== "undefined";
}

/** The notification button: shown while permission can still be asked for. */
export function renderNotifyButton() {
  const button = document.getElementById("notify");
  if (!button) return;
  button.hidden = !notifications() || Notification.permission !== "default";
}

/** Asks for permission to notify (from the button only, never on load). */
export async function askToNotify() {
  if (!notifications()) return;
  try {
    await Notification.requestPermission();
  } catch (err) {
    console.warn("notification permission failed", err);
  }
  renderNotifyButton();
}

/**
 * A live message: a desktop notification when permitted, the page is hidden, and it is
 * someone else's message (one that mentions the user says so).
 */
export function notify(msg) {
  if (!notifications() || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" || msg.user.id === me.id) return;
  const title = mentionsMe(msg) ? `${msg.user.username} mentioned you in #${msg.room}` : `#${msg.room}`;
  try {
    const n = new Notification(title, { body: `${msg.user.username}: ${msg.body}`, tag: `roomcast-${msg.room}` });
    n.onclick = () => window.focus();
  } catch (err) {
    console.warn("notification failed", err);
  }
}
