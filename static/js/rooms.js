// The joined rooms: what the stream's events do to them, their history pages and presence,
// switching between them and dropping one.

import { api } from "./api.js";
import { loadDraft } from "./composer.js";
import { messageRemoved, messagesAdded, pageAbove, refreshDeleteButtons } from "./messages.js";
import {
  renderHistoryControls,
  renderMembers,
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
  if (state.current && roleIn(state.current) !== before) refreshDeleteButtons();
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
  if (ev.room === state.current) messageRemoved();
}

/**
 * A `removed` event: the user was taken out of a private room. The room leaves the page
 * (the server has unsubscribed it already) and a notice says so.
 */
export function onRemoved(ev) {
  state.myRooms.delete(ev.room);
  forgetRoom(ev.room);
  renderMyRooms();
  if (ev.by && ev.by.id === me.id) {
    showNotice(`You left #${ev.room}.`);
    return;
  }
  const by = ev.by && ev.by.username ? ` by ${ev.by.username}` : "";
  showNotice(
    `You were removed from #${ev.room}${by}. It is private, so you can no longer read or post there.`,
  );
}

/**
 * A `member` event: someone was added to a room, given another role, or removed. For the
 * user's own membership "My rooms", the delete and member buttons follow at once (and a
 * room the user was added to appears); the member list of the room on screen follows too.
 */
export function onMember(ev) {
  if (ev.user.id === me.id) {
    const before = roleIn(ev.room);
    if (ev.role === null) state.myRooms.delete(ev.room);
    else {
      const known = state.myRooms.get(ev.room);
      state.myRooms.set(ev.room, { visibility: known ? known.visibility : "…", role: ev.role });
      // The event does not say whether the room is private: "My rooms" reads it.
      if (!known) loadMyRooms();
      if (!known) {
        const by = ev.by && ev.by.username ? ` by ${ev.by.username}` : "";
        showNotice(`You were added to #${ev.room}${by}: it is under "My rooms".`);
      }
    }
    renderMyRooms();
    renderRooms();
    if (ev.room === state.current && roleIn(ev.room) !== before) refreshDeleteButtons();
  }
  const m = state.members;
  if (ev.room === state.current && m && m.room === ev.room) {
    const rest = m.members.filter((x) => x.id !== ev.user.id);
    if (ev.role !== null) rest.push({ id: ev.user.id, username: ev.user.username, role: ev.role });
    rest.sort((a, b) => a.username.toLowerCase().localeCompare(b.username.toLowerCase()));
    state.members = { room: m.room, members: rest };
    renderMembers();
  } else if (ev.room === state.current && ev.user.id === me.id) {
    loadMembers(ev.room);
  }
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
    messagesAdded([msg]);
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
  const changed = state.current !== name;
  if (changed) state.members = null;
  state.current = name;
  saveJoined();
  renderRoom();
  if (changed) loadDraft();
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
  const wasCurrent = state.current === name;
  if (wasCurrent) {
    state.current = state.rooms.keys().next().value || null;
    state.members = null;
    loadMembers();
  }
  saveJoined();
  renderRoom();
  if (wasCurrent) loadDraft();
  return true;
}

/** Time (ms) the last page of history took to draw, for the end-to-end tests. */
export const drawTimes = [];

/**
 * Puts a page of history in; `above`: it goes above what is shown, keeping the reader's
 * place. Only the page's own messages are drawn (see messages.js).
 */
function addPage(room, messages, above) {
  const added = messages.filter((m) => room.add(m));
  if (room.name !== state.current) return;
  const t0 = performance.now();
  if (!added.length) renderHistoryControls();
  else if (above) pageAbove();
  else messagesAdded(added);
  drawTimes.push(performance.now() - t0);
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
