// The page's state: the one object every module reads and writes, the limits it keeps to,
// and the joined rooms: the user's room list on the server (follows, the same on every
// device, with each room's read marker), mirrored in localStorage.

import { api } from "./api.js";

/** Room names the server accepts (API.md, "Names"). */
export const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Events every subscribe asks for (`member`: others' member changes in the rooms held). */
export const EVENTS = ["message", "presence", "typing", "member"];
/** Messages per room on first load and per "earlier" page. */
export const HISTORY = 50;
/** Rooms one connection may hold (the server refuses more). */
export const MAX_ROOMS = 100;
/** At most one `typing` event per this interval (they count against the post limit). */
export const TYPING_SEND_MS = 3000;
/** How long a `typing` event keeps "… is typing" up. */
export const TYPING_SHOW_MS = 4000;
/** How long to wait before starting over when the browser gives up on the EventSource. */
export const RECONNECT_MS = 3000;
/** Joins and leaves within this long are sent to the server together (follow/unfollow). */
export const SAVE_JOINED_MS = 500;

/** Most messages of the room on screen kept in the page at once; farther ones are dropped
 * and drawn again from memory when scrolled back to. */
export const MAX_RENDERED = 400;
/** Messages drawn when a room comes on screen, and per step when scrolling through memory. */
export const RENDER_STEP = 50;
/** Consecutive messages of one author within this long show under one name. */
export const GROUP_MS = 5 * 60 * 1000;
/** The counter under the box shows from this many characters before the limit. */
export const COUNTER_FROM = 500;
/** How many characters of a replied-to body a reply quotes (the server's excerpt). */
export const EXCERPT_CHARS = 100;

const meEl = document.getElementById("me");

/** `limits.message_chars`, as the server rendered it into the page. */
export const MESSAGE_CHARS = Number(meEl.dataset.messageChars) || 4000;

/** The signed-in user, as the server rendered it into the page. */
export const me = {
  id: meEl.dataset.userId,
  username: meEl.dataset.username,
  role: meEl.dataset.role,
};

/** The first `EXCERPT_CHARS` characters of `body`, as the server quotes a reply's original. */
export function excerpt(body) {
  const chars = [...body];
  return chars.length > EXCERPT_CHARS ? chars.slice(0, EXCERPT_CHARS).join("") : body;
}

/** Whether `msg` mentions the signed-in user. */
export function mentionsMe(msg) {
  return Array.isArray(msg.mentions) && msg.mentions.some((u) => u.id === me.id);
}

/** Whether the signed-in user holds reaction `r` (as far as its `users` tell). */
export function reactedByMe(r) {
  return r.users.some((u) => u.id === me.id);
}

/**
 * One joined room: its messages (by id, ascending), presence, typing and unread count.
 *
 * A message is kept as the server sent it and then changed in place by the change events
 * (`message_edited`, `reaction`, `message_deleted` of what it quotes); `changes` counts the
 * events applied to it, so an answer to our own request, read before an event that came
 * first, never overwrites what the stream said since.
 */
export class RoomState {
  constructor(name) {
    this.name = name;
    this.messages = new Map(); // id -> Message
    this.ids = []; // ascending
    this.replies = new Map(); // replied-to id -> Set of ids of the messages quoting it
    this.loaded = false; // the latest page is in (read after the room's subscribe answered)
    this.loadingLatest = false;
    this.hasMore = true; // earlier history may exist
    this.loadingEarlier = null; // the page being read, a Promise
    this.presence = new Map(); // user id -> username
    this.typing = new Map(); // user id -> {username, timer}
    this.unread = 0;
    this.mentioned = false; // an unread message mentions the user
    this.lastReadId = 0; // the read marker, as the server keeps it for every device
    this.dividerAt = null; // the marker when the room came on screen: "New messages" below it
  }

  /** The id of the oldest message in, or null. */
  oldest() {
    return this.ids.length ? this.ids[0] : null;
  }

  /** Adds a message; false when it is already there. Keeps ids ascending. */
  add(msg) {
    if (this.messages.has(msg.id)) return false;
    if (!Array.isArray(msg.reactions)) msg.reactions = [];
    if (!Array.isArray(msg.mentions)) msg.mentions = [];
    msg.changes = 0;
    this.messages.set(msg.id, msg);
    let i = this.ids.length;
    while (i > 0 && this.ids[i - 1] > msg.id) i--;
    this.ids.splice(i, 0, msg.id);
    if (msg.reply_to) {
      const quoting = this.replies.get(msg.reply_to.id) || new Set();
      quoting.add(msg.id);
      this.replies.set(msg.reply_to.id, quoting);
    }
    return true;
  }

  /** Takes a message out; false when it was not there. */
  remove(id) {
    const msg = this.messages.get(id);
    if (!msg) return false;
    this.messages.delete(id);
    this.ids.splice(this.ids.indexOf(id), 1);
    if (msg.reply_to) {
      const quoting = this.replies.get(msg.reply_to.id);
      if (quoting) quoting.delete(id);
      if (quoting && !quoting.size) this.replies.delete(msg.reply_to.id);
    }
    return true;
  }

  /**
   * A message read again (a page read after a replay that skipped events): the state it was
   * read with, newer than any change the stream brought before, replaces ours. False when
   * it is not in memory.
   */
  refresh(fresh) {
    const msg = this.messages.get(fresh.id);
    if (!msg) return false;
    msg.body = fresh.body;
    msg.edited_at = fresh.edited_at;
    msg.mentions = Array.isArray(fresh.mentions) ? fresh.mentions : [];
    msg.reactions = Array.isArray(fresh.reactions) ? fresh.reactions : [];
    if (msg.reply_to && fresh.reply_to) msg.reply_to = fresh.reply_to;
    msg.changes++;
    return true;
  }

  /** The messages in memory that quote message `id`. */
  quoting(id) {
    const ids = this.replies.get(id);
    return ids ? [...ids].map((q) => this.messages.get(q)).filter(Boolean) : [];
  }

  /**
   * Message `id` was deleted: the replies quoting it say so (`user` and `excerpt` null, as
   * the server shows them from now on). The ids of the replies changed.
   */
  orphanReplies(id) {
    const changed = [];
    for (const m of this.quoting(id)) {
      if (m.reply_to.user === null && m.reply_to.excerpt === null) continue;
      m.reply_to = { id, user: null, excerpt: null };
      changed.push(m.id);
    }
    return changed;
  }

  /**
   * A `message_edited` event (or the answer to our own edit): the message's new body, edit
   * time and mentions, and the excerpt of every reply quoting it (also when the original is
   * not in memory). The ids of the messages whose drawing changed.
   */
  applyEdit(ev, counted = true) {
    const changed = [];
    const msg = this.messages.get(ev.message_id);
    if (msg) {
      msg.body = ev.body;
      msg.edited_at = ev.edited_at;
      msg.mentions = Array.isArray(ev.mentions) ? ev.mentions : [];
      if (counted) msg.changes++;
      changed.push(msg.id);
    }
    const quoted = excerpt(ev.body);
    for (const m of this.quoting(ev.message_id)) {
      if (m.reply_to.excerpt === null || m.reply_to.excerpt === quoted) continue;
      m.reply_to = { ...m.reply_to, excerpt: quoted };
      changed.push(m.id);
    }
    return changed;
  }

  /**
   * A `reaction` event: the emoji's count is the event's (exact, after the change), and its
   * user joins or leaves the emoji's users; at 0 the emoji leaves the list, and one that
   * comes back goes to its end, as the server orders them. Applying an event again, or one
   * already contained in a message read later, changes nothing. False when the message is
   * not in memory.
   */
  applyReaction(ev) {
    const msg = this.messages.get(ev.message_id);
    if (!msg) return false;
    const list = msg.reactions;
    const at = list.findIndex((r) => r.emoji === ev.emoji);
    if (ev.count <= 0) {
      if (at >= 0) list.splice(at, 1);
    } else {
      const r = at >= 0 ? list[at] : { emoji: ev.emoji, count: 0, users: [] };
      if (at < 0) list.push(r);
      r.count = ev.count;
      const held = r.users.findIndex((u) => u.id === ev.user.id);
      if (ev.action === "add" && held < 0) r.users.push({ id: ev.user.id, username: ev.user.username });
      else if (ev.action === "remove" && held >= 0) r.users.splice(held, 1);
    }
    msg.changes++;
    return true;
  }
}

/** Everything the page knows that changes; nothing else in the app is mutable. */
export const state = {
  /** @type {Map<string, RoomState>} the joined rooms, in the order they were joined */
  rooms: new Map(),
  /** Name of the room on screen, or null. */
  current: null,
  /** The EventSource. */
  es: null,
  /** The live connection, from `connected` (see stream.js); null between streams. */
  link: null,
  /** Highest persisted event id read off the stream: where a new stream resumes. */
  lastSeenId: 0,
  /** How the last resume was asked for: "query" (one step) or "body" (two steps). */
  resumedBy: null,
  /** The last one-step open failed before `connected`: the next stream opens in two steps. */
  oneStepFailed: false,
  /** Replayed events of the first subscribe still to come (see `countUnread`). */
  replayLeft: 0,
  /** EventSource objects made (the browser's own reconnects not counted). */
  streamsOpened: 0,
  /** Off while the first subscribe replays each room's history. */
  countUnread: false,
  /** When the last `typing` event went out (ms since the epoch). */
  lastTypingSent: 0,
  /** Id of the newest broadcast shown; older ones (replays) are not shown again. */
  shownBroadcastId: 0,
  /**
   * @type {Map<string, {visibility: string, role: string}>} rooms the user created or was
   * added to (`GET /api/me/rooms`), with the user's role there
   */
  myRooms: new Map(),
  /** Members of the room on screen (`{room, members}`), or null when it has none to show. */
  members: null,
  /**
   * Posts waiting to go out, oldest first (see outbox.js): `{key, room, body, replyTo, note}`
   * (`replyTo` as in `replyTo` below, or null).
   * Kept in this tab's sessionStorage, so a reload or a session that ended loses none.
   */
  outbox: [],
  /** The room on screen is scrolled to its newest message (and follows new ones). */
  stick: true,
  /** Per room, the message the next post answers: `{id, user, excerpt}` (see reply.js). */
  replyTo: new Map(),
  /** The message being edited in place, `{room, id, text, fromComposer}`, or null (edit.js). */
  editing: null,
};

/** The user's role in `name` ("owner", "moderator", "member"), or null for none. */
export function roleIn(name) {
  const mine = state.myRooms.get(name);
  return mine ? mine.role : null;
}

/** May the user delete `msg`: its author, the room's owner or moderators, and admins. */
export function mayDelete(msg) {
  if (msg.user.id === me.id || me.role === "admin") return true;
  const role = roleIn(msg.room);
  return role === "owner" || role === "moderator";
}

const storeKey = `roomcast.rooms.${me.id}`;
const draftsKey = `roomcast.drafts.${me.id}`;
const currentKey = `roomcast.current.${me.id}`;
/** Set while this browser's list has changes the server has not confirmed yet. */
const unsavedKey = `roomcast.rooms-unsaved.${me.id}`;

/** Valid room names of `list` once each, at most `MAX_ROOMS`; null when it is no list. */
function cleanNames(list) {
  if (!Array.isArray(list)) return null;
  const names = list.filter((r) => typeof r === "string" && ROOM_RE.test(r));
  return [...new Set(names)].slice(0, MAX_ROOMS);
}

/** This browser's saved list, or null. */
function localJoined() {
  try {
    return cleanNames(JSON.parse(localStorage.getItem(storeKey) || "null"));
  } catch {
    return null;
  }
}

/**
 * The joined rooms to start with: the user's room list on the server (`GET /api/me/rooms`,
 * the same on every device), with each room's read state; this browser's copy when the
 * server cannot be read; else `general`. Returns `[{name, last_read_id, unread, mentions}]`.
 */
export async function loadJoined() {
  const local = localJoined();
  // A reload right after a join, before the follow went out: this browser's list wins.
  const pending = local && local.length && localStorage.getItem(unsavedKey);
  const blank = (name) => ({ name, last_read_id: 0, unread: 0, mentions: 0 });
  try {
    const data = await api("GET", "/api/me/rooms");
    const rooms = data.rooms.filter((r) => ROOM_RE.test(r.name)).slice(0, MAX_ROOMS);
    followed = new Set(rooms.map((r) => r.name));
    if (pending) {
      const known = new Map(rooms.map((r) => [r.name, r]));
      return local.map((name) => known.get(name) || blank(name));
    }
    if (rooms.length) return rooms;
  } catch (err) {
    console.warn("room list: using this browser's copy", err);
  }
  return (local || ["general"]).map(blank);
}

/** The room the last visit had on screen, or null. */
export function loadCurrent() {
  return localStorage.getItem(currentKey);
}

let saveTimer = null;
/** The rooms the server's list holds, as far as this page knows. */
let followed = new Set();

/**
 * Saves the joined rooms and the one on screen: at once in this browser, and on the server.
 * A room joined is followed at once, so the server's read marker starts where this page
 * starts counting unread messages (a later follow would start it past messages the page
 * already counts, and reading them would then move nothing). A room left is unfollowed once
 * the joins and leaves of `SAVE_JOINED_MS` settle, so leaving and coming straight back sends
 * nothing. `force` (the start) follows every joined room.
 */
export function saveJoined(force = false) {
  const names = [...state.rooms.keys()];
  const list = JSON.stringify(names);
  const changed = localStorage.getItem(storeKey) !== list;
  localStorage.setItem(storeKey, list);
  if (state.current) localStorage.setItem(currentKey, state.current);
  if (!changed && !force) return;
  if (changed && !force) localStorage.setItem(unsavedKey, "1");
  const follows = [];
  for (const name of names) {
    if (followed.has(name)) continue;
    followed.add(name);
    follows.push(api("PUT", `/api/me/rooms/${name}`));
  }
  settled(follows);
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    const now = new Set(state.rooms.keys());
    const unfollows = [];
    for (const name of [...followed]) {
      if (now.has(name)) continue;
      followed.delete(name);
      unfollows.push(api("DELETE", `/api/me/rooms/${name}`));
    }
    settled(unfollows);
  }, SAVE_JOINED_MS);
}

/** Once `sent` are answered, the list counts as saved, unless it changed meanwhile. */
function settled(sent) {
  Promise.all(sent)
    .then(() => {
      const now = [...state.rooms.keys()];
      const saved = now.length === followed.size && now.every((name) => followed.has(name));
      if (saved && localStorage.getItem(storeKey) === JSON.stringify(now)) {
        localStorage.removeItem(unsavedKey);
      }
    })
    .catch((err) => console.warn("saving the room list failed", err));
}

/** This browser's unsent text per room: `{room: text}`. */
function readDrafts() {
  try {
    const d = JSON.parse(localStorage.getItem(draftsKey) || "{}");
    return d && typeof d === "object" && !Array.isArray(d) ? d : {};
  } catch {
    return {};
  }
}

/** The drafts this page knows of: read at the start, and every one it wrote since. */
const knownDrafts = readDrafts();

/** The unsent text of `room` ("" when none). */
export function draftOf(room) {
  const text = readDrafts()[room];
  return typeof text === "string" ? text : "";
}

/** Keeps `text` as the unsent text of `room` ("" forgets it), across reloads and logins. */
export function saveDraft(room, text) {
  if (!room) return;
  if (text) knownDrafts[room] = text;
  else delete knownDrafts[room];
  const drafts = readDrafts();
  if (text) drafts[room] = text;
  else delete drafts[room];
  writeDrafts(drafts);
}

function writeDrafts(drafts) {
  try {
    localStorage.setItem(draftsKey, JSON.stringify(drafts));
  } catch (err) {
    console.warn("saving the drafts failed", err);
  }
}

/**
 * The session ended under this page (another tab logged out, it expired, a ban): the
 * drafts this page knows of are kept for the next login, even if the tab that logged out
 * forgot them; a newer draft of another tab wins.
 */
export function keepDraftsAfterSessionEnd() {
  writeDrafts({ ...knownDrafts, ...readDrafts() });
}

/** Forgets every draft (logging out). */
export function clearDrafts() {
  for (const room of Object.keys(knownDrafts)) delete knownDrafts[room];
  localStorage.removeItem(draftsKey);
}

/** What the page calls a message's author: its name, or "deleted user" once the account is
 * deleted (the server keeps its messages with `username: null`). */
export const DELETED_USER = "deleted user";
export function nameOf(user) {
  return user && typeof user.username === "string" ? user.username : DELETED_USER;
}
