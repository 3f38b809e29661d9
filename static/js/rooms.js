// The joined rooms: what the stream's events do to them (messages, their edits, reactions
// and deletions), their history pages and presence, switching between them and dropping one.

import { api } from "./api.js";
import { composerError, loadDraft } from "./composer.js";
import { editGone } from "./edit.js";
import {
  messageChanged,
  messageRemoved,
  messagesAdded,
  pageAbove,
  refreshDeleteButtons,
  showMessage,
} from "./messages.js";
import { notify } from "./readstate.js";
import { originalChanged, renderReplyBar } from "./reply.js";
import { $ } from "./dom.js";
import { renderHistoryControls, renderMembers, renderMyRooms, renderPresence, renderRoom, renderRooms, renderTyping, showBanner, showNotice } from "./render.js";
import {
  HISTORY,
  RECONNECT_MS,
  TYPING_SHOW_MS,
  me,
  mentionsMe,
  roleIn,
  saveJoined,
  state,
} from "./state.js";

/**
 * The rooms the user created or was added to (`GET /api/me/rooms`): "My rooms", the private
 * marks and the roles that decide which delete and member buttons show.
 */
export async function loadMyRooms() {
  const before = state.current ? roleIn(state.current) : null;
  try {
    const data = await api("GET", "/api/me/rooms");
    // Followed rooms (no role) are in the list but not "My rooms".
    const mine = data.rooms.filter((r) => r.role !== null);
    state.myRooms = new Map(mine.map((r) => [r.name, { visibility: r.visibility, role: r.role }]));
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
  if (!room) return;
  const current = ev.room === state.current;
  // Replies quoting it say so, also when it is older than what is in memory.
  for (const id of room.orphanReplies(ev.message_id)) if (current) messageChanged(id);
  if (originalChanged(ev.room, ev.message_id, null) && current) {
    composerError("The message you were replying to was deleted; this one will go out as a plain message.");
  }
  const editing = editGone(ev.room, ev.message_id);
  if (!room.remove(ev.message_id)) return;
  if (!current) return;
  const li = document.querySelector(`#messages li.msg[data-id="${ev.message_id}"]`);
  const hadFocus = !!li && li.contains(document.activeElement);
  messageRemoved();
  if (editing) composerError("The message you were editing was deleted.");
  if (hadFocus && editing) $("composer-input").focus();
}

/**
 * A `message_edited` event (live or replayed): the message's new body, wherever it is drawn,
 * and the quotes of the replies to it.
 */
export function onMessageEdited(ev) {
  const room = state.rooms.get(ev.room);
  if (!room) return;
  const changed = room.applyEdit(ev);
  originalChanged(ev.room, ev.message_id, ev.body);
  if (ev.room === state.current) for (const id of changed) messageChanged(id);
}

/** A `reaction` event (live or replayed): the message's reaction bar follows. */
export function onReaction(ev) {
  const room = state.rooms.get(ev.room);
  if (!room || !room.applyReaction(ev)) return;
  if (ev.room === state.current) messageChanged(ev.message_id);
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
  if (live && state.countUnread) notify(msg);
  if (msg.room === state.current) {
    messagesAdded([msg]);
  } else if (live && state.countUnread) {
    room.unread++;
    if (mentionsMe(msg) && msg.user.id !== me.id) room.mentioned = true;
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
  const opened = state.rooms.get(name);
  // "New messages" below the marker as it is when the room comes on screen.
  if (changed) opened.dividerAt = opened.unread > 0 ? opened.lastReadId : null;
  saveJoined();
  renderRoom();
  renderReplyBar();
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
  state.replyTo.delete(name);
  saveJoined();
  renderRoom();
  renderReplyBar();
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

/**
 * Loads a page of earlier messages of `name` (the current room by default) with `before=`;
 * resolves to true once a page is in (false when there is none to read, or it failed). A
 * call while a page is being read waits for that one.
 */
export function loadEarlier(name = state.current) {
  const room = name && state.rooms.get(name);
  if (!room || !room.loaded || !room.hasMore) return Promise.resolve(false);
  if (room.loadingEarlier) return room.loadingEarlier;
  const before = room.oldest();
  const q = before ? `before=${before}&limit=${HISTORY}` : `limit=${HISTORY}`;
  room.loadingEarlier = (async () => {
    try {
      const data = await api("GET", `/api/rooms/${name}/messages?${q}`);
      if (state.rooms.get(name) !== room) return false;
      room.hasMore = data.messages.length === HISTORY;
      addPage(room, data.messages, before !== null);
      return true;
    } catch (err) {
      console.warn("history failed", err);
      return false;
    } finally {
      room.loadingEarlier = null;
    }
  })();
  return room.loadingEarlier;
}

/**
 * Shows the original of a reply in the room on screen: from memory, or read page by page
 * from older history until it is in (or the start of the room is reached). The reader is
 * told while it loads, and when it is gone.
 */
export async function showOriginal(id) {
  const name = state.current;
  const room = name && state.rooms.get(name);
  if (!room) return;
  if (!room.messages.has(id)) {
    const status = $("history-status");
    status.textContent = "Loading earlier messages to find the original…";
    while (!room.messages.has(id) && room.hasMore && (room.oldest() === null || room.oldest() > id)) {
      const ok = await loadEarlier(name);
      if (state.current !== name || state.rooms.get(name) !== room) return;
      if (!ok && room.hasMore) break;
    }
    status.textContent = room.messages.has(id) ? "" : "The original message is no longer there.";
  }
  showMessage(id);
}

/**
 * Loads what a capped replay skipped, with `after=`; messages in memory read on the way
 * take the state they were read with (their change events may have been skipped too).
 */
export async function pageAfter(name, after) {
  const room = state.rooms.get(name);
  const oldest = room ? room.oldest() : null;
  let from = oldest !== null ? Math.min(after, oldest - 1) : after;
  for (;;) {
    const data = await api("GET", `/api/rooms/${name}/messages?after=${from}&limit=200`);
    for (const m of data.messages) {
      const r = state.rooms.get(name);
      if (r && r.refresh(m)) {
        if (name === state.current) messageChanged(m.id);
      } else onMessage(m, false);
    }
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
