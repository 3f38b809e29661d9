// The stream: one EventSource per tab, its connection id, the serial queue of
// subscribe/unsubscribe requests on it, and resume by event id.

import { api } from "./api.js";
import { retryNow } from "./outbox.js";
import { onRead } from "./readstate.js";
import { renderHistoryControls, renderMyRooms, setConn, showJoinError, showNotice } from "./render.js";
import {
  forgetRoom,
  loadLatest,
  onBroadcast,
  onMessage,
  onMember,
  onMessageDeleted,
  onMessageEdited,
  onPresence,
  onReaction,
  onRemoved,
  onTyping,
  pageAfter,
  refreshPresence,
} from "./rooms.js";
import { EVENTS, HISTORY, RECONNECT_MS, state } from "./state.js";

/**
 * The first subscribe, made as the stream opens (the one-step form): every joined room,
 * resuming after the last event seen, or on first load each room's latest page. Null when
 * no room is joined, or when the last one-step open failed before its `connected` (its
 * error body is out of an EventSource's reach): the two-step form then says what is wrong.
 */
function firstSubscribe() {
  const rooms = [...state.rooms.keys()];
  if (!rooms.length || state.oneStepFailed) return null;
  const resumeFrom = state.lastSeenId;
  const query = new URLSearchParams({ rooms: rooms.join(","), events: EVENTS.join(",") });
  if (resumeFrom > 0) query.set("last_event_id", String(resumeFrom));
  else query.set("history", String(HISTORY));
  return { query, resumeFrom, history: resumeFrom > 0 ? 0 : HISTORY };
}

/** Opens a new EventSource (closing the old one), subscribed as it opens when it can. */
export function connect() {
  if (state.es) state.es.close();
  state.streamsOpened++;
  state.link = null;
  const first = firstSubscribe();
  const mine = new EventSource(first ? `/api/events?${first.query}` : "/api/events");
  state.es = mine;
  let opened = false;
  mine.addEventListener("connected", (e) => {
    if (state.es !== mine) return;
    opened = true;
    const data = JSON.parse(e.data);
    // A new connection: whatever was queued for the old one is dropped (see `enqueue`).
    const conn = {
      id: data.connection_id,
      queue: Promise.resolve(),
      started: false, // the first subscribe (the one that resumes) has been made
      held: new Set(), // rooms the server holds for this connection
    };
    state.link = conn;
    // Whichever form opened it, the next stream tries one step again.
    state.oneStepFailed = false;
    if (data.subscribed) {
      state.resumedBy = first.resumeFrom > 0 ? "query" : null;
      conn.started = true;
      const joined = first.query.get("rooms").split(",").map((name) => state.rooms.get(name));
      subscribed(conn, data.subscribed, joined.filter(Boolean), { ...first, replayFollows: true });
    }
    // Rooms joined or left since the URL was made.
    syncRooms();
  });
  mine.addEventListener("message", (e) => {
    noteId(e);
    onMessage(JSON.parse(e.data), true);
  });
  mine.addEventListener("broadcast", (e) => {
    noteId(e);
    onBroadcast(JSON.parse(e.data));
  });
  mine.addEventListener("message_deleted", (e) => {
    noteId(e);
    onMessageDeleted(JSON.parse(e.data));
  });
  // Edits and reactions pass the `message` filter, live and replayed on a resume.
  mine.addEventListener("message_edited", (e) => {
    noteId(e);
    onMessageEdited(JSON.parse(e.data));
  });
  mine.addEventListener("reaction", (e) => {
    noteId(e);
    onReaction(JSON.parse(e.data));
  });
  mine.addEventListener("removed", (e) => {
    const ev = JSON.parse(e.data);
    // The server has taken the room off this connection already: nothing to unsubscribe.
    if (state.link) state.link.held.delete(ev.room);
    onRemoved(ev);
  });
  mine.addEventListener("member", (e) => onMember(JSON.parse(e.data)));
  mine.addEventListener("read", (e) => onRead(JSON.parse(e.data)));
  mine.addEventListener("presence", (e) => onPresence(JSON.parse(e.data)));
  mine.addEventListener("typing", (e) => onTyping(JSON.parse(e.data)));
  mine.addEventListener("error", () => {
    if (state.es !== mine) return;
    state.link = null;
    setConn("reconnecting");
    // The page reconnects, not the browser: the browser would open the same URL again,
    // naming the rooms joined back then.
    mine.close();
    // Spread over a second, so a restarted server is not met by every tab at once.
    const delay = RECONNECT_MS + Math.random() * 1000;
    setTimeout(async () => {
      if (state.es !== mine) return;
      try {
        await api("GET", "/api/me");
        // The server answers, yet the one-step open failed before `connected`: it was
        // refused (a room gone private, a limit), and only the two-step form can say why.
        if (first && !opened) state.oneStepFailed = true;
        connect();
      } catch (err) {
        if (err.status !== 401) setTimeout(() => state.es === mine && connect(), RECONNECT_MS);
      }
    }, delay);
  });
}

/** True when there is no stream, or the browser has given up on it. */
export function streamClosed() {
  return !state.es || state.es.readyState === EventSource.CLOSED;
}

/** Closes the stream for good (logging out). */
export function closeStream() {
  if (state.es) state.es.close();
}

function noteId(e) {
  // After this event's own handler: the last replayed message is not unread either.
  if (state.replayLeft > 0 && --state.replayLeft === 0) queueMicrotask(() => (state.countUnread = true));
  const id = Number(e.lastEventId);
  if (Number.isFinite(id) && id > state.lastSeenId) state.lastSeenId = id;
}

/** Starts over with a new stream, unless `stale` has been replaced already. */
function reconnectLater(stale) {
  setTimeout(() => state.link === stale && connect(), RECONNECT_MS);
}

/**
 * Runs `task(conn)` after every subscribe/unsubscribe queued before it on the same
 * connection, one request at a time; dropped when the connection has been replaced by then.
 */
function enqueue(conn, task) {
  const run = conn.queue.then(() => (state.link === conn ? task(conn) : undefined));
  conn.queue = run.catch(() => {});
  return run;
}

/**
 * Brings the server's rooms for this connection in line with the joined rooms. Every join
 * and leave asks for it; the queue keeps the requests in order, and each run looks at the
 * rooms as they are then, so a room left before its subscribe went out is never subscribed.
 */
export function syncRooms() {
  if (state.link) {
    enqueue(state.link, syncTask).catch((err) => console.warn("subscribe failed", err));
  }
}

async function syncTask(conn) {
  if (!conn.started) {
    await subscribeFirst(conn);
    return;
  }
  const gone = [...conn.held].filter((name) => !state.rooms.has(name));
  if (gone.length) {
    const res = await request(conn, "/api/unsubscribe", { connection_id: conn.id, rooms: gone });
    if (!res) return;
    conn.held = new Set(res.rooms);
  }
  const added = [...state.rooms.keys()].filter((name) => !conn.held.has(name));
  if (added.length) {
    const body = { connection_id: conn.id, rooms: added, events: EVENTS };
    let unknown = false;
    const res = await request(conn, "/api/subscribe", body, (err) => {
      if (err.code === "unknown_room") return (unknown = true);
      if (err.code !== "too_many_rooms") return false;
      for (const name of added) forgetRoom(name);
      showJoinError(err.message);
      return true;
    });
    if (!res) {
      if (unknown) await retryWithoutUnknown(conn, added);
      return;
    }
    conn.held = new Set(res.rooms);
    for (const name of added) refreshPresence(name);
  }
  loadMissingHistory(conn);
}

/**
 * The first subscribe in two steps, for every joined room, when the stream opened without
 * one (no room was joined, or the one-step open failed). It resumes as the one-step form
 * would: after `lastSeenId`, or on first load with each room's latest page. Whatever
 * arrives twice (history pages, replays, our own posts) is dropped by id. With no room
 * joined it waits: the next join sends it.
 */
async function subscribeFirst(conn) {
  const joined = [...state.rooms.values()];
  const names = joined.map((room) => room.name);
  if (!names.length) {
    setConn("live");
    return;
  }
  conn.started = true;
  const body = { connection_id: conn.id, rooms: names, events: EVENTS };
  const resumeFrom = state.lastSeenId;
  if (resumeFrom > 0) {
    body.last_event_id = resumeFrom;
    state.resumedBy = "body";
  } else {
    body.history = HISTORY;
  }
  let unknown = false;
  const res = await request(conn, "/api/subscribe", body, (err) => (unknown = err.code === "unknown_room"));
  if (!res) {
    if (unknown) {
      // Nothing of it was joined: this first subscribe goes out again without the room.
      conn.started = false;
      await retryWithoutUnknown(conn, names);
    }
    return;
  }
  subscribed(conn, res, joined, { resumeFrom, history: body.history || 0 });
}

/**
 * What follows a connection's first subscribe, in either form: `res` is its answer (or the
 * `connected` event's `subscribed`), `joined` the rooms it named.
 */
function subscribed(conn, res, joined, { resumeFrom, history, replayFollows = false }) {
  const names = joined.map((room) => room.name);
  conn.held = new Set(res.rooms);
  setConn("live");
  // Unread counting starts once the replay this subscribe asked for is in. Two steps: it
  // came before the answer. One step: it follows `connected`, so after its
  // `replay.count` events (or a second, whichever is first).
  state.replayLeft = replayFollows && res.replay ? res.replay.count : 0;
  setTimeout(() => (state.countUnread = true), state.replayLeft ? 1000 : 0);
  if (history) {
    // The replay on the stream is each room's latest page. Its messages may all be in by
    // now, drawn while the room was not marked loaded: draw "Load earlier" again.
    for (const room of joined) room.loaded = true;
    renderHistoryControls();
  }
  if (res.replay && res.replay.complete === false) {
    for (const name of names) {
      pageAfter(name, resumeFrom).catch((err) => console.warn("paging failed", err));
    }
  }
  for (const name of names) refreshPresence(name);
  loadMissingHistory(conn);
  // The stream is back: posts the server did not answer while it was away go out now.
  retryNow();
}

/**
 * A subscribe of `names` was refused with `404 unknown_room`: one of them is a private room
 * the user is not (or no longer) a member of, and the server joined none of them. The
 * answer does not say which, so each one's presence (404 the same way) tells; those leave
 * the page with a word why, and the rest are subscribed again. When none answers 404 the
 * page starts over with a new stream.
 */
async function retryWithoutUnknown(conn, names) {
  const refused = [];
  for (const name of names) {
    try {
      await api("GET", `/api/rooms/${name}/presence`);
    } catch (err) {
      if (err.status === 404) refused.push(name);
    }
  }
  if (state.link !== conn) return;
  if (!refused.length) {
    reconnectLater(conn);
    return;
  }
  for (const name of refused) forgetRoom(name);
  // A room of "My rooms" refused: the user was removed while this page was away (the
  // `removed` event is not replayed).
  const lost = refused.filter((name) => state.myRooms.delete(name));
  if (lost.length) {
    renderMyRooms();
    showNotice(`You are no longer a member of ${lost.map((n) => `#${n}`).join(", ")}.`);
  }
  const list = refused.map((n) => `#${n}`).join(", ");
  showJoinError(`${list}: no such room you may open (private rooms are for their members).`);
  syncRooms();
}

/**
 * One subscribe/unsubscribe; null when it failed or the connection was replaced meanwhile.
 * A failure that `handled` does not take care of leaves the server's view of the connection
 * unknown: the page starts over with a new stream, whose first subscribe names every room.
 */
async function request(conn, path, body, handled = () => false) {
  try {
    const res = await api("POST", path, body);
    return state.link === conn ? res : null;
  } catch (err) {
    if (state.link !== conn || handled(err)) return null;
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
  for (const room of state.rooms.values()) {
    if (!room.loaded && conn.held.has(room.name)) loadLatest(room, conn);
  }
}
