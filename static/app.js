// roomcast browser app: one EventSource per tab, the two-step subscribe, resume by id.
//
// Every user-provided string (message bodies, usernames, room names) is rendered with
// textContent, never as HTML.

const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const EVENTS = ["message", "presence", "typing"];
const HISTORY = 50; // messages per room on first load and per "earlier" page
const MAX_ROOMS = 100; // rooms one connection may hold (the server refuses more)
const TYPING_SEND_MS = 2000; // at most one `typing` event per this interval
const TYPING_SHOW_MS = 4000; // how long a `typing` event keeps "… is typing" up
const RECONNECT_MS = 3000; // when the browser gives up on the EventSource

const $ = (id) => document.getElementById(id);
const meEl = $("me");
const me = {
  id: meEl.dataset.userId,
  username: meEl.dataset.username,
  role: meEl.dataset.role,
};
const storeKey = `roomcast.rooms.${me.id}`;
const currentKey = `roomcast.current.${me.id}`;

/** @type {Map<string, RoomState>} */
const rooms = new Map();
let current = null; // name of the room on screen
let es = null; // the EventSource
let link = null; // the live connection, from `connected` (see `connect`); null between streams
let lastSeenId = 0; // highest persisted event id read off the stream
let lastTypingSent = 0;
let shownBroadcastId = 0;
let countUnread = false; // off while the first subscribe replays each room's history

class RoomState {
  constructor(name) {
    this.name = name;
    this.messages = new Map(); // id -> Message
    this.ids = []; // ascending
    this.loaded = false; // the latest page is in (read after the room's subscribe answered)
    this.loadingLatest = false;
    this.hasMore = true; // earlier history may exist
    this.loadingEarlier = false;
    this.presence = new Map(); // user id -> username
    this.typing = new Map(); // user id -> {username, timer}
    this.unread = 0;
  }
  oldest() {
    return this.ids.length ? this.ids[0] : null;
  }
  /** Adds a message; false when it is already there. Keeps ids ascending. */
  add(msg) {
    if (this.messages.has(msg.id)) return false;
    this.messages.set(msg.id, msg);
    let i = this.ids.length;
    while (i > 0 && this.ids[i - 1] > msg.id) i--;
    this.ids.splice(i, 0, msg.id);
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Persistence of the joined rooms

function loadJoined() {
  try {
    const list = JSON.parse(localStorage.getItem(storeKey) || "null");
    if (Array.isArray(list)) {
      const names = list.filter((r) => typeof r === "string" && ROOM_RE.test(r));
      return [...new Set(names)].slice(0, MAX_ROOMS);
    }
  } catch {
    /* fall through */
  }
  return ["general"];
}

function saveJoined() {
  localStorage.setItem(storeKey, JSON.stringify([...rooms.keys()]));
  if (current) localStorage.setItem(currentKey, current);
}

// ---------------------------------------------------------------------------------------
// HTTP

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new HttpError(0, "network", "You are offline; try again when the connection is back.");
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    if (res.status === 401) {
      location.assign("/login");
    }
    const err = data && data.error;
    throw new HttpError(res.status, err ? err.code : "http", err ? err.message : `HTTP ${res.status}`);
  }
  return data;
}

// ---------------------------------------------------------------------------------------
// The stream

function setConn(state) {
  const el = $("conn");
  el.classList.remove("conn-live", "conn-reconnecting", "conn-connecting");
  el.classList.add(`conn-${state}`);
  el.dataset.state = state;
  $("conn-text").textContent =
    state === "live" ? "Live" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
}

let resumedBy = null; // how the last resume was asked for: "header" or "body"
let streamsOpened = 0; // EventSource objects made (the browser's own reconnects not counted)

function connect() {
  if (es) es.close();
  streamsOpened++;
  link = null;
  es = new EventSource("/api/events");
  const mine = es;
  es.addEventListener("connected", (e) => {
    if (es !== mine) return;
    const data = JSON.parse(e.data);
    // A new connection: whatever was queued for the old one is dropped (see `enqueue`).
    link = {
      id: data.connection_id,
      // Every event carries the EventSource's last event id: on the browser's own reconnect
      // it is the `Last-Event-ID` this stream was opened with, and the server resumes from it.
      headerId: Number(e.lastEventId) || 0,
      queue: Promise.resolve(),
      started: false, // the first subscribe (the one that resumes) has been sent
      held: new Set(), // rooms the server holds for this connection
    };
    syncRooms();
  });
  es.addEventListener("message", (e) => {
    noteId(e);
    onMessage(JSON.parse(e.data), true);
  });
  es.addEventListener("broadcast", (e) => {
    noteId(e);
    showBroadcast(JSON.parse(e.data));
  });
  es.addEventListener("presence", (e) => onPresence(JSON.parse(e.data)));
  es.addEventListener("typing", (e) => onTyping(JSON.parse(e.data)));
  es.addEventListener("error", () => {
    if (es !== mine) return;
    link = null;
    setConn("reconnecting");
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. a non-200 answer): check the session, then start over;
      // the subscribe resumes from `lastSeenId` explicitly.
      setTimeout(async () => {
        if (es !== mine) return;
        try {
          await api("GET", "/api/me");
          connect();
        } catch (err) {
          if (err.status !== 401) setTimeout(() => es === mine && connect(), RECONNECT_MS);
        }
      }, RECONNECT_MS);
    }
  });
}

function noteId(e) {
  const id = Number(e.lastEventId);
  if (Number.isFinite(id) && id > lastSeenId) lastSeenId = id;
}

/** Starts over with a new stream, unless `stale` has been replaced already. */
function reconnectLater(stale) {
  setTimeout(() => link === stale && connect(), RECONNECT_MS);
}

/**
 * Runs `task(conn)` after every subscribe/unsubscribe queued before it on the same
 * connection, one request at a time; dropped when the connection has been replaced by then.
 */
function enqueue(conn, task) {
  const run = conn.queue.then(() => (link === conn ? task(conn) : undefined));
  conn.queue = run.catch(() => {});
  return run;
}

/**
 * Brings the server's rooms for this connection in line with the joined rooms. Every join
 * and leave asks for it; the queue keeps the requests in order, and each run looks at the
 * rooms as they are then, so a room left before its subscribe went out is never subscribed.
 */
function syncRooms() {
  if (link) enqueue(link, syncTask).catch((err) => console.warn("subscribe failed", err));
}

async function syncTask(conn) {
  if (!conn.started) {
    await subscribeFirst(conn);
    return;
  }
  const gone = [...conn.held].filter((name) => !rooms.has(name));
  if (gone.length) {
    const res = await request(conn, "/api/unsubscribe", { connection_id: conn.id, rooms: gone });
    if (!res) return;
    conn.held = new Set(res.rooms);
  }
  const added = [...rooms.keys()].filter((name) => !conn.held.has(name));
  if (added.length) {
    const body = { connection_id: conn.id, rooms: added, events: EVENTS };
    const res = await request(conn, "/api/subscribe", body, (err) => {
      if (err.code !== "too_many_rooms") return false;
      for (const name of added) forgetRoom(name);
      showJoinError(err.message);
      return true;
    });
    if (!res) return;
    conn.held = new Set(res.rooms);
    for (const name of added) refreshPresence(name);
  }
  loadMissingHistory(conn);
}

/**
 * The two-step subscribe's first request on a connection, for every joined room; the
 * server resumes only on this one. What it asks to replay:
 * - the browser reconnected its EventSource: the stream was opened with `Last-Event-ID`
 *   (`headerId`), so nothing in the body; the server replays everything after it;
 * - the page opened a new EventSource after having seen events: `last_event_id` explicitly;
 * - first load: the last `HISTORY` messages of each room.
 * Whatever arrives twice (history pages, replays, our own posts) is dropped by id.
 * With no room joined it waits: the next join sends it.
 */
async function subscribeFirst(conn) {
  const joined = [...rooms.values()];
  const names = joined.map((room) => room.name);
  if (!names.length) {
    setConn("live");
    return;
  }
  conn.started = true;
  const body = { connection_id: conn.id, rooms: names, events: EVENTS };
  const resumeFrom = lastSeenId;
  if (resumeFrom > 0) {
    if (conn.headerId > 0) resumedBy = "header";
    else {
      body.last_event_id = resumeFrom;
      resumedBy = "body";
    }
  } else {
    body.history = HISTORY;
  }
  const res = await request(conn, "/api/subscribe", body);
  if (!res) return;
  conn.held = new Set(res.rooms);
  setConn("live");
  setTimeout(() => {
    countUnread = true;
  }, 0);
  if (body.history) {
    // The replay on the stream is each room's latest page.
    for (const room of joined) room.loaded = true;
  }
  if (res.replay && res.replay.complete === false) {
    for (const name of names) {
      pageAfter(name, resumeFrom).catch((err) => console.warn("paging failed", err));
    }
  }
  for (const name of names) refreshPresence(name);
  loadMissingHistory(conn);
}

/**
 * One subscribe/unsubscribe; null when it failed or the connection was replaced meanwhile.
 * A failure that `handled` does not take care of leaves the server's view of the connection
 * unknown: the page starts over with a new stream, whose first subscribe names every room.
 */
async function request(conn, path, body, handled = () => false) {
  try {
    const res = await api("POST", path, body);
    return link === conn ? res : null;
  } catch (err) {
    if (link !== conn || handled(err)) return null;
    console.warn(`${path} failed`, err);
    reconnectLater(conn);
    return null;
  }
}

/**
 * Rooms the server holds for `conn` whose latest page is not in yet (joined since the last
 * load, or on a resume that replays only what came after `lastSeenId`): read it now that
 * the subscribe has answered, so every later message comes on the stream.
 */
function loadMissingHistory(conn) {
  for (const room of rooms.values()) {
    if (!room.loaded && conn.held.has(room.name)) loadLatest(room, conn);
  }
}

/** Loads what a capped replay skipped, with `after=`. */
async function pageAfter(name, after) {
  let from = after;
  for (;;) {
    const data = await api("GET", `/api/rooms/${name}/messages?after=${from}&limit=200`);
    for (const m of data.messages) onMessage(m, false);
    if (data.messages.length < 200) return;
    from = data.messages[data.messages.length - 1].id;
  }
}

async function refreshPresence(name) {
  try {
    const data = await api("GET", `/api/rooms/${name}/presence`);
    const room = rooms.get(name);
    if (!room) return;
    room.presence = new Map(data.users.map((u) => [u.id, u.username]));
    if (name === current) renderPresence();
  } catch (err) {
    console.warn("presence failed", err);
  }
}

// ---------------------------------------------------------------------------------------
// Events

function onMessage(msg, live) {
  const room = rooms.get(msg.room);
  if (!room || !room.add(msg)) return; // not ours any more, or a duplicate
  clearTyping(room, msg.user.id);
  if (msg.room === current) {
    insertMessage(msg);
  } else if (live && countUnread) {
    room.unread++;
    renderRooms();
  }
}

function onPresence(ev) {
  const room = rooms.get(ev.room);
  if (!room) return;
  if (ev.action === "join") room.presence.set(ev.user.id, ev.user.username);
  else if (ev.action === "leave") {
    room.presence.delete(ev.user.id);
    clearTyping(room, ev.user.id);
  }
  if (ev.room === current) renderPresence();
}

function onTyping(ev) {
  const room = rooms.get(ev.room);
  if (!room || ev.user.id === me.id) return;
  const prev = room.typing.get(ev.user.id);
  if (prev) clearTimeout(prev.timer);
  const timer = setTimeout(() => clearTyping(room, ev.user.id), TYPING_SHOW_MS);
  room.typing.set(ev.user.id, { username: ev.user.username, timer });
  if (ev.room === current) renderTyping();
}

function clearTyping(room, userId) {
  const t = room.typing.get(userId);
  if (!t) return;
  clearTimeout(t.timer);
  room.typing.delete(userId);
  if (room.name === current) renderTyping();
}

function showBroadcast(b) {
  if (b.id <= shownBroadcastId) return;
  shownBroadcastId = b.id;
  $("banner-text").textContent = b.body;
  const t = $("banner-time");
  t.dateTime = b.sent_at;
  t.textContent = formatTime(b.sent_at);
  $("banner").hidden = false;
}

// ---------------------------------------------------------------------------------------
// Rendering

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFmt = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date().toDateString() === d.toDateString();
  return (today ? timeFmt : dateFmt).format(d);
}

function messageEl(msg) {
  const li = document.createElement("li");
  li.className = "msg";
  if (msg.user.id === me.id) li.classList.add("mine");
  li.dataset.id = String(msg.id);
  const head = document.createElement("div");
  head.className = "msg-head";
  const who = document.createElement("span");
  who.className = "msg-user";
  who.textContent = msg.user.username;
  const when = document.createElement("time");
  when.className = "msg-time";
  when.dateTime = msg.sent_at;
  when.textContent = formatTime(msg.sent_at);
  when.title = msg.sent_at;
  head.append(who, " ", when);
  const body = document.createElement("p");
  body.className = "msg-body";
  body.textContent = msg.body;
  li.append(head, body);
  return li;
}

function nearBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
}

/** Puts one message of the current room in place (ids ascending). */
function insertMessage(msg) {
  const list = $("messages");
  const scroller = $("scroller");
  const stick = nearBottom(scroller) || msg.user.id === me.id;
  const li = messageEl(msg);
  let after = list.lastElementChild;
  while (after && Number(after.dataset.id) > msg.id) after = after.previousElementSibling;
  if (after) after.after(li);
  else list.prepend(li);
  $("empty").hidden = true;
  if (stick && li === list.lastElementChild) scroller.scrollTop = scroller.scrollHeight;
  renderHistoryControls();
}

function renderMessages() {
  const list = $("messages");
  const room = current && rooms.get(current);
  list.replaceChildren(...(room ? room.ids.map((id) => messageEl(room.messages.get(id))) : []));
  $("empty").hidden = !!(room && room.ids.length);
  $("empty").textContent = room ? "No messages yet. Say hello!" : "Join a room to start chatting.";
  renderHistoryControls();
  const scroller = $("scroller");
  scroller.scrollTop = scroller.scrollHeight;
}

function renderHistoryControls() {
  const room = current && rooms.get(current);
  $("load-earlier").hidden = !room || !room.loaded || !room.hasMore || room.ids.length === 0;
  $("history-start").hidden = !room || room.hasMore || room.ids.length === 0;
}

function renderRooms() {
  const list = $("room-list");
  const items = [];
  for (const room of rooms.values()) {
    const li = document.createElement("li");
    li.className = "room-item";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "room-open";
    open.dataset.room = room.name;
    const label = document.createElement("span");
    label.textContent = `#${room.name}`;
    open.append(label);
    if (room.name === current) {
      open.setAttribute("aria-current", "true");
      li.classList.add("current");
    }
    if (room.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(room.unread);
      badge.setAttribute("aria-label", `${room.unread} unread`);
      open.append(badge);
    }
    open.addEventListener("click", () => switchRoom(room.name));
    const leave = document.createElement("button");
    leave.type = "button";
    leave.className = "room-leave quiet";
    leave.textContent = "×";
    leave.title = `Leave #${room.name}`;
    leave.setAttribute("aria-label", `Leave #${room.name}`);
    leave.addEventListener("click", () => leaveRoom(room.name));
    li.append(open, leave);
    items.push(li);
  }
  list.replaceChildren(...items);
}

function renderPresence() {
  const list = $("presence");
  const room = current && rooms.get(current);
  const people = room ? [...room.presence.entries()] : [];
  people.sort((a, b) => a[1].localeCompare(b[1]));
  list.replaceChildren(
    ...people.map(([id, name]) => {
      const li = document.createElement("li");
      li.textContent = name;
      if (id === me.id) {
        li.classList.add("self");
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = " (you)";
        li.append(you);
      }
      return li;
    }),
  );
  $("people-title").textContent = room ? `In #${room.name} (${people.length})` : "In this room";
}

function renderTyping() {
  const room = current && rooms.get(current);
  const names = room ? [...room.typing.values()].map((t) => t.username) : [];
  const el = $("typing");
  if (!names.length) el.textContent = "";
  else if (names.length === 1) el.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) el.textContent = `${names[0]} and ${names[1]} are typing…`;
  else el.textContent = "Several people are typing…";
}

function renderRoom() {
  const room = current && rooms.get(current);
  $("room-title").textContent = room ? `#${room.name}` : "No room";
  $("composer-label").textContent = room ? `Message #${room.name}` : "Message";
  $("composer-input").disabled = !room;
  $("send").disabled = !room;
  if (room) room.unread = 0;
  renderRooms();
  renderMessages();
  renderPresence();
  renderTyping();
}

// ---------------------------------------------------------------------------------------
// Actions

function switchRoom(name) {
  if (!rooms.has(name)) return;
  current = name;
  saveJoined();
  renderRoom();
  const room = rooms.get(name);
  if (room.loaded && room.ids.length < HISTORY && room.hasMore) loadEarlier();
}

/**
 * Joins `name` (or shows it, when joined already); false when refused. The subscribe and
 * then the room's latest page follow through the queue (see `syncRooms`); with no stream
 * up, the next `connected` subscribes it with the others.
 */
function joinRoom(name) {
  if (!rooms.has(name)) {
    if (rooms.size >= MAX_ROOMS) {
      showJoinError(`You can be in at most ${MAX_ROOMS} rooms. Leave one to join another.`);
      return false;
    }
    rooms.set(name, new RoomState(name));
  }
  switchRoom(name);
  syncRooms();
  return true;
}

function leaveRoom(name) {
  if (!forgetRoom(name)) return;
  showJoinError("");
  syncRooms();
}

/** Drops a room from the page; false when it was not joined. */
function forgetRoom(name) {
  const room = rooms.get(name);
  if (!room) return false;
  for (const t of room.typing.values()) clearTimeout(t.timer);
  rooms.delete(name);
  if (current === name) current = rooms.keys().next().value || null;
  saveJoined();
  renderRoom();
  return true;
}

function showJoinError(text) {
  $("join-error").textContent = text;
}

/** Puts a page of history in; `above`: it goes above what is shown, keep the reader's place. */
function addPage(room, messages, above) {
  const scroller = $("scroller");
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  let added = false;
  for (const m of messages) added = room.add(m) || added;
  if (room.name !== current) return;
  if (added) {
    renderMessages();
    if (above) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } else {
    renderHistoryControls();
  }
}

/**
 * The latest page of a room, once its subscribe has answered (see `loadMissingHistory`):
 * whatever is stored after this read comes on the stream. One read at a time per room;
 * one in flight was started after a subscribe answered too.
 */
async function loadLatest(room, conn) {
  if (room.loadingLatest) return;
  room.loadingLatest = true;
  try {
    const data = await api("GET", `/api/rooms/${room.name}/messages?limit=${HISTORY}`);
    if (rooms.get(room.name) !== room) return;
    room.loaded = true;
    room.hasMore = data.messages.length === HISTORY;
    addPage(room, data.messages, false);
  } catch (err) {
    console.warn("history failed", err);
    // Again while this connection lives; a new one reads it after its own subscribe.
    setTimeout(() => {
      if (link === conn && rooms.get(room.name) === room && !room.loaded) loadLatest(room, conn);
    }, RECONNECT_MS);
  } finally {
    room.loadingLatest = false;
  }
}

/** Loads a page of earlier messages of `name` (the current room by default) with `before=`. */
async function loadEarlier(name = current) {
  const room = name && rooms.get(name);
  if (!room || !room.loaded || room.loadingEarlier || !room.hasMore) return;
  room.loadingEarlier = true;
  const before = room.oldest();
  const q = before ? `before=${before}&limit=${HISTORY}` : `limit=${HISTORY}`;
  try {
    const data = await api("GET", `/api/rooms/${name}/messages?${q}`);
    if (rooms.get(name) !== room) return;
    room.hasMore = data.messages.length === HISTORY;
    addPage(room, data.messages, before !== null);
  } catch (err) {
    console.warn("history failed", err);
  } finally {
    room.loadingEarlier = false;
  }
}

async function send() {
  const input = $("composer-input");
  const body = input.value;
  const room = current;
  if (!room || !body.trim()) return;
  $("composer-error").textContent = "";
  input.value = "";
  lastTypingSent = 0; // the next keystroke is news again
  autosize();
  try {
    const data = await api("POST", `/api/rooms/${room}/messages`, { body });
    onMessage(data.message, false);
  } catch (err) {
    if (current === room && !input.value) {
      input.value = body;
      autosize();
    }
    $("composer-error").textContent = err.message;
  }
}

function typing() {
  const now = Date.now();
  if (!current || !$("composer-input").value.trim() || now - lastTypingSent < TYPING_SEND_MS) return;
  lastTypingSent = now;
  api("POST", `/api/rooms/${current}/events`, { event: "typing", data: {} }).catch(() => {});
}

function autosize() {
  const input = $("composer-input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

// ---------------------------------------------------------------------------------------
// Wiring

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
$("composer-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
$("composer-input").addEventListener("input", () => {
  autosize();
  typing();
});

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("join-name");
  const name = input.value.trim().toLowerCase().replace(/^#/, "");
  const err = $("join-error");
  if (!ROOM_RE.test(name)) {
    err.textContent = "Room names are 1–64 characters: a-z, 0-9, _ and -.";
    input.setAttribute("aria-invalid", "true");
    return;
  }
  err.textContent = "";
  input.removeAttribute("aria-invalid");
  if (!joinRoom(name)) return;
  input.value = "";
  $("composer-input").focus();
});

$("scroller").addEventListener("scroll", () => {
  if ($("scroller").scrollTop < 60) loadEarlier();
});
$("load-earlier").addEventListener("click", () => loadEarlier());

$("banner-close").addEventListener("click", () => {
  $("banner").hidden = true;
});

$("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/logout");
  } catch {
    /* logged out either way */
  }
  if (es) es.close();
  location.assign("/login");
});

const broadcastForm = $("broadcast-form");
if (broadcastForm) {
  broadcastForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("broadcast-input");
    const status = $("broadcast-status");
    if (!input.value.trim()) return;
    try {
      const data = await api("POST", "/api/admin/broadcast", { body: input.value });
      input.value = "";
      status.textContent = "Sent.";
      showBroadcast(data.broadcast);
    } catch (err) {
      status.textContent = err.message;
    }
  });
}

window.addEventListener("online", () => {
  if (!es || es.readyState === EventSource.CLOSED) connect();
});

// Start: restore the joined rooms, then open the stream.
for (const name of loadJoined()) rooms.set(name, new RoomState(name));
const saved = localStorage.getItem(currentKey);
current = saved && rooms.has(saved) ? saved : rooms.keys().next().value || null;
saveJoined();
renderRoom();
setConn("connecting");
connect();

// For the end-to-end tests and the curious: read-only views of the state.
window.roomcast = {
  get connectionId() {
    return link ? link.id : null;
  },
  get lastSeenId() {
    return lastSeenId;
  },
  get current() {
    return current;
  },
  get streamsOpened() {
    return streamsOpened;
  },
  get resumedBy() {
    return resumedBy;
  },
};
