// The send queue: every post typed goes here first and leaves in the order typed, one at a
// time. A rate limit (`429`) holds the queue for as long as `Retry-After` says; no answer
// at all (offline, server down) or a `5xx` holds it until the connection is back or a
// growing delay has passed. Nothing is dropped: a post the server refuses for good (`403`
// after a removal, say) goes back into its room's message box with the reason.

import { api } from "./api.js";
import { draftOf, saveDraft, state } from "./state.js";

const STORE_KEY = "roomcast.outbox";
/** Longest wait between tries while the server does not answer. */
const MAX_BACKOFF_MS = 15_000;

let running = false;
let timer = null;
/** No post (and no `typing`) goes out before this time (ms since the epoch). */
let holdUntil = 0;
let backoff = 1000;
let seq = 0;
/** Set by app.js: gives a refused post back to its room's box. */
let onRefused = () => {};
/** Set by app.js: shows posts on their way (added, changed, gone) and posts sent. */
let view = { added() {}, changed() {}, gone() {}, sent() {} };

/** Where refused posts go (see app.js). */
export function whenRefused(fn) {
  onRefused = fn;
}

/**
 * Who shows the queue (see app.js): `added(p)`, `changed(p)` and `gone(p)` for a post on
 * its way, `sent(message)` for the stored message the server answered with.
 */
export function showQueueWith(handlers) {
  view = handlers;
}

/** Whether a `typing` event may go out now without taking a post's place. */
export function quiet() {
  return state.outbox.length === 0 && Date.now() >= holdUntil;
}

/** A `429` on anything of ours (a `typing` event too): hold the queue as asked. */
export function limited(err) {
  const secs = err && err.retryAfter !== null && err.retryAfter !== undefined ? err.retryAfter : 1;
  holdUntil = Math.max(holdUntil, Date.now() + Math.max(secs, 0.2) * 1000);
}

function save() {
  try {
    sessionStorage.setItem(
      STORE_KEY,
      JSON.stringify(state.outbox.map(({ room, body, replyTo }) => ({ room, body, replyTo }))),
    );
  } catch (err) {
    console.warn("keeping the outbox failed", err);
  }
}

/** The posts this tab had not sent when it was last closed or reloaded. */
export function restoreOutbox() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "[]");
    if (!Array.isArray(saved)) return;
    for (const p of saved) {
      if (p && typeof p.room === "string" && typeof p.body === "string") {
        const replyTo = p.replyTo && Number.isInteger(p.replyTo.id) ? p.replyTo : null;
        state.outbox.push({ key: `p${++seq}`, room: p.room, body: p.body, replyTo, note: "" });
      }
    }
  } catch {
    /* nothing usable kept */
  }
}

/** Forgets the queue (logging out). */
export function clearOutbox() {
  state.outbox = [];
  sessionStorage.removeItem(STORE_KEY);
}

/** Queues a post to `room` (answering `replyTo`, `{id, user, excerpt}`) and starts sending. */
export function enqueue(room, body, replyTo = null) {
  const p = { key: `p${++seq}`, room, body, replyTo, note: "" };
  state.outbox.push(p);
  save();
  view.added(p);
  pump();
}

function note(p, text) {
  p.note = text;
  view.changed(p);
}

function later(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    timer = null;
    pump();
  }, ms);
}

/** Sends what is queued, in order, for as long as the server takes it. */
export async function pump() {
  if (running) return;
  running = true;
  try {
    while (state.outbox.length) {
      const wait = holdUntil - Date.now();
      if (wait > 0) {
        const secs = Math.ceil(wait / 1000);
        note(state.outbox[0], `Waiting to send (rate limit, ${secs} s)…`);
        later(wait);
        return;
      }
      const p = state.outbox[0];
      note(p, "Sending…");
      let data;
      try {
        const post = p.replyTo ? { body: p.body, reply_to: p.replyTo.id } : { body: p.body };
        data = await api("POST", `/api/rooms/${p.room}/messages`, post);
      } catch (err) {
        if (err.status === 429) {
          limited(err);
          continue;
        }
        if (err.status === 0 || err.status >= 500 || err.status === 408) {
          note(p, `${err.message} It goes out when the connection is back.`);
          later(backoff);
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          return;
        }
        // Refused for good: back to its room's box, never dropped.
        state.outbox.shift();
        save();
        view.gone(p);
        onRefused(p, err);
        continue;
      }
      backoff = 1000;
      state.outbox.shift();
      save();
      view.gone(p);
      view.sent(data.message);
    }
  } finally {
    running = false;
  }
}

/** The connection is back (stream live, or the browser online): try again at once. */
export function retryNow() {
  backoff = 1000;
  if (!running && state.outbox.length && Date.now() >= holdUntil) {
    clearTimeout(timer);
    timer = null;
    pump();
  }
}

/**
 * Puts `body` back into `room`'s box, ahead of whatever was typed there since (nothing is
 * lost either way).
 */
export function giveBack(room, body, box) {
  const typed = box ? box.value : draftOf(room);
  const text = typed.trim() ? `${body}\n\n${typed}` : body;
  if (box) box.value = text;
  saveDraft(room, text);
  return text;
}
