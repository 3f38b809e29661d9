// The joined rooms: what the stream's events do to them, their history pages and presence,
// switching between them and dropping one.

import { api } from "./api.js";
import {
  insertMessage,
  removeMessageEl,
  renderHistoryControls,
  renderMembers,
  renderMessages,
  renderMyRooms,
  renderPresence,
  renderRoom,
  renderRooms,
  renderTyping,
  showBanner,
  showNotice,
} from "./render.js";
import { HISTORY, RECONNECT_MS, TYPING_SHOW_MS, me, roleIn, saveJoined, state } from "./state.js";

/**
 * The rooms the user created or was added to (`GET /api/me/rooms`): "My rooms", the private
 * marks and the roles that decide which delete and member buttons show.
 */
export async function loadMyRooms() {
  const before = state.current ? roleIn(state.current) : null;
  try {
    const data = await api("GET", "/api/me/rooms");
    state.myRooms = new Map(data.rooms.map((r) => [r.name, { visibility: r.visibility, role: r.role }]));
  } catch (err) {
    console.warn("my rooms failed", err);
    return;
  }
  renderMyRooms();
  renderRooms();
  // The role decides the delete buttons of the room on screen.
  if (state.current && roleIn(state.current) !== before) renderMessages();
  loadMembers();
}

/** Reads the members of the room on screen, when it is one of "My rooms" (else none shown). */
export async function loadMembers(name = state.current) {
  if (!name || !state.myRooms.has(name)) {
    if (name === state.current) {
      state.members = null;
      renderMembers();
    }
    return;
  }
  try {
    const data = await api("GET", `/api/rooms/${name}/members`);
    if (name !== state.current) return;
    state.members = { room: name, members: data.members };
  } catch (err) {
    // An implicit room has no members to show (or a server without the route).
    if (name === state.current) state.members = null;
    if (err.status !== 404) console.warn("members failed", err);
  }
  renderMembers();
}

/**
 * A `message_deleted` event (live or replayed on a resume): the message goes from the room
 * and the screen. Its own id moves `lastSeenId` (the caller notes it), so a resume does not
 * replay it again.
 */
export function onMessageDeleted(ev) {
  const room = state.rooms.get(ev.room);
  if (!room || !room.remove(ev.message_id)) return;
  if (ev.room === state.current) removeMessageEl(ev.message_id);
}

/**
 * A `removed` event: the user was taken out of a private room. The room leaves the page
 * (the server has unsubscribed it already) and a notice says so.
 */
export function onRemoved(ev) {
  const by = ev.by && ev.by.username ? ` by ${ev.by.username}` : "";
  state.myRooms.delete(ev.room);
  forgetRoom(ev.room);
  renderMyRooms();
  showNotice(
    `You were removed from #${ev.room}${by}. It is private, so you can no longer read or post there.`,
  );
}

/**
 * A message from the stream (`live`), a history page or our own post. Dropped when its room
 * is not joined any more or it is in already; counts as unread in a room not on screen.
 */
export function onMessage(msg, live) {
  const room = state.rooms.get(msg.room);
  if (!room || !room.add(msg)) return;
  clearTyping(room, msg.user.id);
  if (msg.room === state.current) {
    insertMessage(msg);
  } else if (live && state.countUnread) {
    room.unread++;
    renderRooms();
  }
}

/** Someone joined or left a room. */
export function onPresence(ev) {
  const room = state.rooms.get(ev.room);
  if (!room) return;
  if (ev.action === "join") room.presence.set(ev.user.id, ev.user.username);
  else if (ev.action === "leave") {
    room.presence.delete(ev.user.id);
    clearTyping(room, ev.user.id);
  }
  if (ev.room === state.current) renderPresence();
}

/** Someone else is typing: shown for `TYPING_SHOW_MS` after their last `typing` event. */
export function onTyping(ev) {
  const room = state.rooms.get(ev.room);
  if (!room || ev.user.id === me.id) return;
  const prev = room.typing.get(ev.user.id);
  if (prev) clearTimeout(prev.timer);
  const timer = setTimeout(() => clearTyping(room, ev.user.id), TYPING_SHOW_MS);
  room.typing.set(ev.user.id, { username: ev.user.username, timer });
  if (ev.room === state.current) renderTyping();
}

function clearTyping(room, userId) {
  const t = room.typing.get(userId);
  if (!t) return;
  clearTimeout(t.timer);
  room.typing.delete(userId);
  if (room.name === state.current) renderTyping();
}

/** A broadcast, from the stream or our own; each shows once, older ones never again. */
export function onBroadcast(b) {
  if (b.id <= state.shownBroadcastId) return;
  state.shownBroadcastId = b.id;
  showBanner(b);
}

/** Puts `name` on screen (when joined); loads earlier history when the page is short. */
export function switchRoom(name) {
  if (!state.rooms.has(name)) return;
  if (state.current !== name) state.members = null;
  state.current = name;
  saveJoined();
  renderRoom();
  loadMembers(name);
  const room = state.rooms.get(name);
  if (room.loaded && room.ids.length < HISTORY && room.hasMore) loadEarlier();
}

/** Drops a room from the page; false when it was not joined. */
export function forgetRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return false;
  for (const t of room.typing.values()) clearTimeout(t.timer);
  state.rooms.delete(name);
  if (state.current === name) {
    state.current = state.rooms.keys().next().value || null;
    state.members = null;
    loadMembers();
  }
  saveJoined();
  renderRoom();
  return true;
}

/** Puts a page of history in; `above`: it goes above what is shown, keep the reader's place. */
function addPage(room, messages, above) {
  const scroller = document.getElementById("scroller");
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  let added = false;
  for (const m of messages) added = room.add(m) || added;
  if (room.name !== state.current) return;
  if (added) {
    renderMessages();
    if (above) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } else {
    renderHistoryControls();
  }
}

/**
 * The latest page of a room, once its subscribe on `conn` has answered (see stream.js):
 * whatever is stored after this read comes on the stream. One read at a time per room;
 * one in flight was started after a subscribe answered too.
 */
export async function loadLatest(room, conn) {
  if (room.loadingLatest) return;
  room.loadingLatest = true;
  try {
    const data = await api("GET", `/api/rooms/${room.name}/messages?limit=${HISTORY}`);
    if (state.rooms.get(room.name) !== room) return;
    room.loaded = true;
    room.hasMore = data.messages.length === HISTORY;
    addPage(room, data.messages, false);
  } catch (err) {
    console.warn("history failed", err);
    // Again while this connection lives; a new one reads it after its own subscribe.
    setTimeout(() => {
      if (state.link === conn && state.rooms.get(room.name) === room && !room.loaded) {
        loadLatest(room, conn);
      }
    }, RECONNECT_MS);
  } finally {
    room.loadingLatest = false;
  }
}

/** Loads a page of earlier messages of `name` (the current room by default) with `before=`. */
export async function loadEarlier(name = state.current) {
  const room = name && state.rooms.get(name);
  if (!room || !room.loaded || room.loadingEarlier || !room.hasMore) return;
  room.loadingEarlier = true;
  const before = room.oldest();
  const q = before ? `before=${before}&limit=${HISTORY}` : `limit=${HISTORY}`;
  try {
    const data = await api("GET", `/api/rooms/${name}/messages?${q}`);
    if (state.rooms.get(name) !== room) return;
    room.hasMore = data.messages.length === HISTORY;
    addPage(room, data.messages, before !== null);
  } catch (err) {
    console.warn("history failed", err);
  } finally {
    room.loadingEarlier = false;
  }
}

/** Loads what a capped replay skipped, with `after=`. */
export async function pageAfter(name, after) {
  let from = after;
  for (;;) {
    const data = await api("GET", `/api/rooms/${name}/messages?after=${from}&limit=200`);
    for (const m of data.messages) onMessage(m, false);
    if (data.messages.length < 200) return;
    from = data.messages[data.messages.length - 1].id;
  }
}

/** Reads who is in `name` now (the stream's presence events keep it current after). */
export async function refreshPresence(name) {
  try {
    const data = await api("GET", `/api/rooms/${name}/presence`);
    const room = state.rooms.get(name);
    if (!room) return;
    room.presence = new Map(data.users.map((u) => [u.id, u.username]));
    if (name === state.current) renderPresence();
  } catch (err) {
    console.warn("presence failed", err);
  }
}
