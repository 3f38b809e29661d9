// The message list of the room on screen: drawn incrementally (a message in, a message
// out, a page above), never redrawn whole except when another room comes on screen. Only
// a window of the room's messages is in the page (at most `MAX_RENDERED`); the rest stay in
// memory and are drawn again when scrolled back to. Consecutive messages of one author are
// grouped under one name, and a separator starts each day.

import { $, keepFocus, timeFmt } from "./dom.js";
import { plainText, renderBody } from "./format.js";
import { markSeen } from "./readstate.js";
import {
  GROUP_MS,
  MAX_RENDERED,
  RENDER_STEP,
  mayDelete,
  me,
  mentionsMe,
  nameOf,
  reactedByMe,
  state,
} from "./state.js";

/** Draws the box a message is edited in; edit.js registers it (it draws with these rows). */
let editorFor = (msg) => bodyEl(msg);

/** The function that draws a message's editor (see edit.js). */
export function drawEditorWith(fn) {
  editorFor = fn;
}


/** How close to the bottom (px) still counts as "at the bottom". */
const BOTTOM_SLACK = 80;
/** How close to the top (px) draws or loads earlier messages. */
const TOP_SLACK = 200;

/**
 * The window of the current room that is drawn: every message with `fromId <= id <= toId`
 * (`toId` null: up to the newest, and new ones join it). `els` maps drawn ids to their <li>;
 * `seenTo` is the newest id that was in sight at the bottom (newer ones are "new").
 */
const view = { room: null, fromId: 0, toId: null, els: new Map(), seenTo: 0 };

const dayFmt = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  year: "numeric",
  month: "long",
  day: "numeric",
});

/** A time in full, as `Date.toLocaleString` writes it (one formatter for all: a call of
 * `toLocaleString` makes a new one each time, which adds up over a page of messages). */
const fullFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "numeric",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
  second: "2-digit",
});

/** The parts of a message drawn the same way every time, cloned for each (cheaper than
 * making them element by element, for pages of many messages). */
const PROTO = (() => {
  const li = document.createElement("li");
  li.className = "msg";
  li.tabIndex = -1;
  const head = document.createElement("div");
  head.className = "msg-head";
  const who = document.createElement("span");
  who.className = "msg-user";
  const when = document.createElement("time");
  when.className = "msg-time";
  head.append(who, when);
  const body = document.createElement("div");
  body.className = "msg-body";
  return { li, head, body };
})();

/** "Today", "Yesterday" or the date, for a day separator. */
function dayLabel(d) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return dayFmt.format(d);
}

function currentRoom() {
  return state.current ? state.rooms.get(state.current) : undefined;
}

/** The <li> of one message. Its author's name is always there (read out by screen readers);
 * a continuation of a group only hides it from the eye (see `decorate`). It takes the focus
 * when tapped or jumped to (which shows its actions on a touch screen). */
function messageEl(msg) {
  const li = PROTO.li.cloneNode(false);
  const sent = new Date(msg.sent_at);
  li.dataset.id = String(msg.id);
  li.dataset.user = msg.user.id;
  li.dataset.ts = String(sent.getTime() || 0);
  li.dataset.day = Number.isNaN(sent.getTime()) ? "" : sent.toDateString();
  if (msg.user.id === me.id) li.classList.add("mine");
  if (mentionsMe(msg)) li.classList.add("mentions-me");
  const parts = [headEl(msg, sent)];
  if (msg.reply_to) parts.push(quoteEl(msg.reply_to));
  const editing = state.editing;
  const isEditing = !!editing && editing.room === msg.room && editing.id === msg.id;
  if (isEditing) li.classList.add("editing");
  parts.push(isEditing ? editorFor(msg) : bodyEl(msg));
  if (msg.edited_at) parts.push(editedEl(msg.edited_at));
  if (msg.reactions.length) parts.push(reactionsEl(msg));
  parts.push(actionsEl(msg));
  li.append(...parts);
  return li;
}

/** Name, time and "mentions you". */
function headEl(msg, sent = new Date(msg.sent_at)) {
  const head = PROTO.head.cloneNode(true);
  const [who, when] = head.children;
  who.textContent = nameOf(msg.user);
  if (msg.user.username == null) who.classList.add("deleted-user");
  when.dateTime = msg.sent_at;
  if (!Number.isNaN(sent.getTime())) {
    when.textContent = timeFmt.format(sent);
    when.title = fullFmt.format(sent);
  }
  if (mentionsMe(msg)) {
    const badge = document.createElement("span");
    badge.className = "msg-mention";
    badge.textContent = "mentions you";
    head.append(badge);
  }
  return head;
}

/** "edited", after the text: focusable, so that its time shows to the keyboard as it does on
 * hover; a screen reader reads the time with it. */
function editedEl(iso) {
  const t = document.createElement("time");
  t.className = "msg-edited";
  t.dateTime = iso;
  t.tabIndex = 0;
  t.textContent = "edited";
  const d = new Date(iso);
  if (!Number.isNaN(d.getTime())) {
    const text = `Edited ${fullFmt.format(d)}`;
    t.title = text;
    t.dataset.tip = text;
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = ` ${fullFmt.format(d)}`;
    t.append(hidden);
  }
  return t;
}

/** The quoted original of a reply: a button to it, or a line saying it was deleted. */
function quoteEl(reply) {
  if (reply.user === null || reply.excerpt === null) {
    const gone = document.createElement("p");
    gone.className = "msg-quote gone";
    gone.textContent = "Original message deleted";
    return gone;
  }
  const b = document.createElement("button");
  b.type = "button";
  b.className = "msg-quote";
  b.dataset.replyTo = String(reply.id);
  const lead = document.createElement("span");
  lead.className = "visually-hidden";
  lead.textContent = "In reply to ";
  const who = document.createElement("span");
  who.className = "quote-user";
  who.textContent = reply.user ? nameOf(reply.user) : "someone";
  const text = document.createElement("span");
  text.className = "quote-text";
  text.textContent = plainText(reply.excerpt);
  const tail = document.createElement("span");
  tail.className = "visually-hidden";
  tail.textContent = ". Show the original.";
  const colon = document.createElement("span");
  colon.className = "visually-hidden";
  colon.textContent = ": ";
  b.append(lead, who, colon, text, tail);
  b.title = "Show the original message";
  return b;
}

/** The message's text, formatted, its mentions marked. */
function bodyEl(msg) {
  const body = PROTO.body.cloneNode(false);
  const marks = msg.mentions.length
    ? new Map(msg.mentions.filter((u) => u.username).map((u) => [u.username.toLowerCase(), u.id === me.id]))
    : null;
  renderBody(body, msg.body, marks);
  return body;
}

const listFmt = new Intl.ListFormat(undefined, { style: "long", type: "conjunction" });

/** Who holds reaction `r`, for its chip's label: "you, alice and 3 others". */
export function reactionNames(r) {
  const names = r.users.map((u) => (u.id === me.id ? "you" : nameOf(u)));
  const others = r.count - names.length;
  if (others > 0) names.push(`${others} other${others === 1 ? "" : "s"}`);
  return listFmt.format(names);
}

/** The reaction bar: a toggle per emoji with its count, and "add a reaction". */
function reactionsEl(msg) {
  const bar = document.createElement("div");
  bar.className = "msg-reactions";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", `Reactions to ${nameOf(msg.user)}'s message`);
  for (const r of msg.reactions) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "reaction";
    chip.dataset.emoji = r.emoji;
    const mine = reactedByMe(r);
    chip.setAttribute("aria-pressed", String(mine));
    const names = reactionNames(r);
    chip.setAttribute("aria-label", `${r.emoji} ${r.count}: ${names}`);
    chip.title = `${names} reacted with ${r.emoji}${mine ? ". Click to take yours back." : ""}`;
    const emoji = document.createElement("span");
    emoji.className = "reaction-emoji";
    emoji.textContent = r.emoji;
    const count = document.createElement("span");
    count.className = "reaction-count";
    count.textContent = String(r.count);
    chip.append(emoji, count);
    bar.append(chip);
  }
  const add = document.createElement("button");
  add.type = "button";
  add.className = "reaction-add";
  add.setAttribute("aria-label", "Add a reaction");
  add.title = "Add a reaction";
  add.setAttribute("aria-haspopup", "dialog");
  add.textContent = "+";
  bar.append(add);
  return bar;
}

/** The buttons of a message's actions, made once and cloned for each message (cheaper than
 * building them one by one, for pages of many messages). */
const ACTIONS = (() => {
  const make = (cls, text) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `${cls} msg-action quiet`;
    b.textContent = text;
    b.tabIndex = -1;
    return b;
  };
  const react = make("msg-react", "React");
  react.setAttribute("aria-haspopup", "dialog");
  return {
    react,
    reply: make("msg-reply", "Reply"),
    edit: make("msg-edit", "Edit"),
    del: make("msg-delete", "Delete"),
  };
})();

/** The message's actions, one Tab stop (arrow keys move between them): react, reply, and for
 * its author edit; delete for whoever may (see `mayDelete`). Clicks are handled once on the
 * list (see app.js). */
function actionsEl(msg) {
  const bar = document.createElement("div");
  bar.className = "msg-actions";
  bar.setAttribute("role", "toolbar");
  const name = nameOf(msg.user);
  bar.setAttribute("aria-label", `Actions: message from ${name}`);
  const add = (proto, label) => {
    const b = proto.cloneNode(true);
    b.setAttribute("aria-label", label);
    bar.append(b);
    return b;
  };
  add(ACTIONS.react, `React to ${name}'s message`).tabIndex = 0;
  add(ACTIONS.reply, `Reply to ${name}`);
  if (msg.user.id === me.id) add(ACTIONS.edit, "Edit your message");
  if (mayDelete(msg)) add(ACTIONS.del, `Delete message from ${name}`);
  return bar;
}

/**
 * Message `id` of the room on screen changed (an edit, a reaction, its original edited or
 * deleted): its drawn <li>, if any, follows. A control inside it that had the focus has it
 * again (the same chip, the same action); a chip that went leaves it on "add a reaction".
 */
export function messageChanged(id) {
  const li = view.els.get(id);
  const room = currentRoom();
  const msg = room && room.messages.get(id);
  if (!li || !msg) return;
  const had = li.contains(document.activeElement) && document.activeElement !== li;
  keepFocus(li, () => {
    li.classList.toggle("mentions-me", mentionsMe(msg));
    li.querySelector(":scope > .msg-head").replaceWith(headEl(msg));
    const quote = li.querySelector(":scope > .msg-quote");
    if (quote) quote.replaceWith(msg.reply_to ? quoteEl(msg.reply_to) : "");
    const body = li.querySelector(":scope > .msg-body");
    if (body) body.replaceWith(bodyEl(msg));
    const mark = li.querySelector(":scope > .msg-edited");
    if (mark) mark.remove();
    const text = li.querySelector(":scope > .msg-body, :scope > .msg-editor");
    if (msg.edited_at) text.after(editedEl(msg.edited_at));
    const bar = li.querySelector(":scope > .msg-reactions");
    const fresh = msg.reactions.length ? reactionsEl(msg) : null;
    if (bar && fresh) bar.replaceWith(fresh);
    else if (bar) bar.remove();
    else if (fresh) li.querySelector(":scope > .msg-actions").before(fresh);
  });
  if (had && !li.contains(document.activeElement)) {
    const back = li.querySelector(".reaction-add") || li.querySelector(".msg-react");
    if (back) back.focus();
  }
}

/** Puts the body of drawn message `id` back in place of its editor (see edit.js). */
export function bodyBack(id) {
  const li = view.els.get(id);
  const room = currentRoom();
  const msg = room && room.messages.get(id);
  const editor = li && li.querySelector(":scope > .msg-editor");
  if (editor && msg) editor.replaceWith(bodyEl(msg));
}

/** The drawn message before `li` (skipping separators and pending posts), or null. */
function prevMsg(li) {
  let p = li.previousElementSibling;
  while (p && !p.dataset.id) p = p.previousElementSibling;
  return p;
}

function nextMsg(li) {
  let n = li.nextElementSibling;
  while (n && !n.dataset.id) n = n.nextElementSibling;
  return n;
}

/**
 * Puts `li` right: a day separator before it when its day differs from the message above
 * (or nothing is above), and grouped (`cont`) under the one above when the same author
 * wrote both within `GROUP_MS` on one day.
 */
function decorate(li) {
  const prev = prevMsg(li);
  const newDay = !prev || prev.dataset.day !== li.dataset.day;
  const before = li.previousElementSibling;
  const hasSep = before && before.classList.contains("day-sep");
  if (newDay && !hasSep) {
    const sep = document.createElement("li");
    sep.className = "day-sep";
    sep.textContent = li.dataset.day ? dayLabel(new Date(Number(li.dataset.ts))) : "";
    li.before(sep);
  } else if (!newDay && hasSep) {
    before.remove();
  }
  const cont =
    !newDay &&
    prev.dataset.user === li.dataset.user &&
    Number(li.dataset.ts) - Number(prev.dataset.ts) < GROUP_MS;
  const divided = newDivider(li, prev);
  li.classList.toggle("cont", cont && !divided);
}

/**
 * Keeps the "New messages" line on the first message above the marker the room had when it
 * came on screen (and on no other).
 */
function newDivider(li, prev) {
  const room = currentRoom();
  const at = room ? room.dividerAt : null;
  const id = Number(li.dataset.id);
  const first = at !== null && id > at && (!prev || Number(prev.dataset.id) <= at);
  const line = li.firstElementChild;
  const has = !!line && line.classList.contains("new-divider");
  if (first && !has) {
    const div = document.createElement("div");
    div.className = "new-divider";
    div.textContent = "New messages";
    li.prepend(div);
  } else if (!first && has) line.remove();
  return first;
}

/** Takes a drawn message out, with its separator when it was the day's first. */
function removeEl(li) {
  const before = li.previousElementSibling;
  const next = nextMsg(li);
  if (before && before.classList.contains("day-sep")) before.remove();
  li.remove();
  return next;
}

function nearBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < BOTTOM_SLACK;
}

/** Index of the first id >= `id` in the ascending `ids`. */
function lowerBound(ids, id) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The drawn window as indices `[lo, hi)` of the room's ids. */
function range(room) {
  const lo = lowerBound(room.ids, view.fromId);
  const hi = view.toId === null ? room.ids.length : lowerBound(room.ids, view.toId + 1);
  return [lo, Math.max(lo, hi)];
}

/** The first message at least partly in sight and its distance from the top of the view. */
function anchor(scroller) {
  const top = scroller.getBoundingClientRect().top;
  const items = $("messages").children;
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].getBoundingClientRect().bottom <= top) lo = mid + 1;
    else hi = mid;
  }
  const el = items[lo];
  return el ? { el, offset: el.getBoundingClientRect().top - top } : null;
}

/**
 * Brings the page in line with the window: draws what is missing, drops what is outside it
 * or deleted, and touches nothing else. The reader's place stays where it was (or at the
 * bottom, when the view follows the newest).
 */
function reconcile() {
  const room = currentRoom();
  const list = $("messages");
  const scroller = $("scroller");
  if (!room) return;
  const [lo, hi] = range(room);
  const keep = state.stick ? null : anchor(scroller);
  const touched = new Set();
  // Out: deleted, or outside the window.
  const first = room.ids[lo];
  const last = room.ids[hi - 1];
  for (const [id, li] of view.els) {
    if (hi > lo && id >= first && id <= last && room.messages.has(id)) continue;
    view.els.delete(id);
    const next = removeEl(li);
    if (next) touched.add(next);
  }
  // In: walk the window, inserting each missing message after the one before it.
  let prevEl = null;
  for (let i = lo; i < hi; i++) {
    const id = room.ids[i];
    let li = view.els.get(id);
    if (!li) {
      li = messageEl(room.messages.get(id));
      view.els.set(id, li);
      if (prevEl) prevEl.after(li);
      else list.prepend(li);
      touched.add(li);
      const next = nextMsg(li);
      if (next) touched.add(next);
    }
    prevEl = li;
  }
  // Top to bottom, so each one sees its settled neighbour above.
  for (const li of [...touched].filter((el) => el.isConnected).sort(byId)) decorate(li);
  // Pending posts stay below every sent message (moved only when something got below them:
  // a move would read them out again in the live region).
  const pending = [...list.querySelectorAll("li.pending")];
  if (pending.some((p, i) => p.nextElementSibling !== (pending[i + 1] || null))) {
    for (const p of pending) list.append(p);
  }
  if (state.stick) {
    scroller.scrollTop = scroller.scrollHeight;
    if (view.toId === null && room.ids.length) view.seenTo = room.ids[room.ids.length - 1];
  } else if (keep && keep.el.isConnected) {
    const top = scroller.getBoundingClientRect().top;
    scroller.scrollTop += keep.el.getBoundingClientRect().top - top - keep.offset;
  }
  // Everything fits: the newest is in sight whatever the reader did.
  if (!state.stick && view.toId === null && nearBottom(scroller)) state.stick = true;
  renderHistoryControls();
}

function byId(a, b) {
  return Number(a.dataset.id) - Number(b.dataset.id);
}

/** Draws the current room from scratch: its newest `RENDER_STEP` messages, at the bottom. */
export function renderMessages() {
  const room = currentRoom();
  const list = $("messages");
  list.replaceChildren();
  view.els.clear();
  view.room = room ? room.name : null;
  view.seenTo = 0;
  state.stick = true;
  if (room) {
    view.fromId = room.ids.length ? room.ids[Math.max(0, room.ids.length - RENDER_STEP)] : 0;
    view.toId = null;
    reconcile();
    for (const p of state.outbox) if (p.room === room.name) list.append(pendingEl(p));
  }
  $("empty").hidden = !!(room && room.ids.length);
  $("empty").textContent = room ? "No messages yet. Say hello!" : "Join a room to start chatting.";
  renderHistoryControls();
  renderJump();
  const scroller = $("scroller");
  scroller.scrollTop = scroller.scrollHeight;
}

/**
 * A message of the current room came in (live, replayed, our own, or any history page):
 * drawn when it falls inside the window, or joins its end while the window follows the
 * newest. Past `MAX_RENDERED` the oldest drawn go when the reader is at the bottom; when
 * not, the window stops following and "New messages" offers the rest.
 */
export function messagesAdded(msgs) {
  const room = currentRoom();
  if (!room) return;
  if (!view.els.size && view.toId === null) {
    // Nothing drawn yet (e.g. the first page): start at the newest.
    view.fromId = room.ids[Math.max(0, room.ids.length - RENDER_STEP)] || 0;
  }
  let [lo, hi] = range(room);
  if (view.toId === null && hi - lo > MAX_RENDERED) {
    if (state.stick) view.fromId = room.ids[hi - MAX_RENDERED];
    else {
      view.toId = room.ids[lo + MAX_RENDERED - 1];
      [lo, hi] = range(room);
    }
  }
  // Below the window's start but older than all shown: history pages of a joined room
  // (e.g. the latest page read after live messages came); draw them when they touch it.
  const firstDrawn = room.ids[lo];
  if (msgs.some((m) => m.id < firstDrawn) && lo > 0 && hi - lo < RENDER_STEP) {
    view.fromId = room.ids[Math.max(0, hi - RENDER_STEP)];
  }
  reconcile();
  $("empty").hidden = room.ids.length > 0;
  renderJump();
  markSeen();
}

/** A deleted message of the current room leaves the page. */
export function messageRemoved() {
  const room = currentRoom();
  if (!room) return;
  reconcile();
  $("empty").hidden = room.ids.length > 0;
}

/**
 * Draws `RENDER_STEP` earlier messages from memory when there are any above the window;
 * false when the window starts at the oldest in memory (the caller loads a page).
 */
export function showEarlier() {
  const room = currentRoom();
  if (!room) return false;
  const [lo, hi] = range(room);
  if (lo === 0) return false;
  const atBottom = nearBottom($("scroller"));
  const from = Math.max(0, lo - RENDER_STEP);
  view.fromId = room.ids[from];
  if (hi - from > MAX_RENDERED) view.toId = room.ids[from + MAX_RENDERED - 1];
  // A reader at the bottom stays there (a short room filling up); else the place is kept.
  state.stick = atBottom && view.toId === null;
  reconcile();
  renderJump();
  return true;
}

/** An earlier page came in: drawn above, the reader's place kept. */
export function pageAbove() {
  showEarlier();
}

/** Draws `RENDER_STEP` later messages from memory, dropping the far top past the cap. */
function showLater() {
  const room = currentRoom();
  if (!room || view.toId === null) return;
  const [lo, hi] = range(room);
  const to = Math.min(room.ids.length, hi + RENDER_STEP);
  view.toId = to === room.ids.length ? null : room.ids[to - 1];
  if (to - lo > MAX_RENDERED) view.fromId = room.ids[to - MAX_RENDERED];
  reconcile();
  renderJump();
}

/** To the newest message, following new ones again. */
export function jumpToNewest() {
  const room = currentRoom();
  if (!room) return;
  state.stick = true;
  if (view.toId !== null) {
    view.toId = null;
    view.fromId = room.ids[Math.max(0, room.ids.length - RENDER_STEP)] || 0;
  }
  reconcile();
  renderJump();
}

/**
 * The reader scrolled: at the bottom the view follows the newest again; near either end of
 * the window the next messages are drawn (from memory) or, at the top of memory, loaded.
 * Returns "load" when an earlier page should be read from the server.
 */
export function onScroll() {
  const scroller = $("scroller");
  const room = currentRoom();
  const atBottom = nearBottom(scroller);
  if (room && atBottom && view.toId !== null) {
    showLater();
    return null;
  }
  state.stick = atBottom && (!room || view.toId === null);
  if (state.stick && room && room.ids.length) view.seenTo = room.ids[room.ids.length - 1];
  renderJump();
  markSeen();
  if (scroller.scrollTop < TOP_SLACK && room) {
    if (!showEarlier()) return "load";
  }
  return null;
}

/** After the layout changed (the window shrank, as when a phone's keyboard opens, or the
 * typing line came): a view at the bottom stays there. */
export function keepBottom() {
  if (state.stick) {
    const scroller = $("scroller");
    scroller.scrollTop = scroller.scrollHeight;
  }
}

/** "New messages ↓" while newer messages than those in sight exist and the reader is not
 * at the bottom. */
export function renderJump() {
  const jump = $("jump");
  const room = currentRoom();
  const unseen = room ? room.ids.length - lowerBound(room.ids, view.seenTo + 1) : 0;
  const show = !!room && !state.stick && (unseen > 0 || view.toId !== null);
  jump.hidden = !show;
  if (show) {
    $("jump-text").textContent =
      unseen > 0 ? `${unseen} new message${unseen === 1 ? "" : "s"}` : "Newest messages";
  }
}

/** "Load earlier messages" while there may be more, "Start of the room's history" after. */
export function renderHistoryControls() {
  const room = currentRoom();
  const [lo] = room ? range(room) : [0];
  const more = !!room && (lo > 0 || room.hasMore);
  $("load-earlier").hidden = !room || !room.loaded || !more || room.ids.length === 0;
  $("history-start").hidden = !room || more || room.ids.length === 0;
}

/** Adds or takes away the Delete buttons of drawn messages after a role changed. */
export function refreshDeleteButtons() {
  const room = currentRoom();
  if (!room) return;
  for (const [id, li] of view.els) {
    const msg = room.messages.get(id);
    const btn = li.querySelector(".msg-delete");
    const may = msg && mayDelete(msg);
    if (may === !!btn) continue;
    keepFocus(li, () => li.querySelector(":scope > .msg-actions").replaceWith(actionsEl(msg)));
  }
}

/**
 * Brings message `id` of the room on screen (in memory) into sight: the window moves to it
 * when it is not drawn, the view stops following the newest, and the message is marked for
 * a moment and takes the focus. False when it is not in memory.
 */
export function showMessage(id) {
  const room = currentRoom();
  if (!room || !room.messages.has(id)) return false;
  state.stick = false;
  if (!view.els.has(id)) {
    const at = lowerBound(room.ids, id);
    const from = Math.max(0, at - RENDER_STEP / 2);
    const to = Math.min(room.ids.length, from + RENDER_STEP);
    view.fromId = room.ids[from];
    view.toId = to >= room.ids.length ? null : room.ids[to - 1];
    reconcile();
    state.stick = false;
  }
  const li = view.els.get(id);
  if (!li) return false;
  li.scrollIntoView({ block: "center" });
  li.classList.remove("flash");
  // Restarts the animation when the same message is shown again.
  void li.offsetWidth;
  li.classList.add("flash");
  setTimeout(() => li.classList.remove("flash"), 2500);
  li.focus({ preventScroll: true });
  renderJump();
  return true;
}

/** The drawn <li> of message `id`, or undefined. */
export function messageLi(id) {
  return view.els.get(id);
}

// ---- posts on their way (see outbox.js) ----

/** A post waiting to go out, drawn below the sent messages with its state. */
export function pendingEl(p) {
  const li = document.createElement("li");
  li.className = "msg mine pending";
  li.dataset.key = p.key;
  const head = document.createElement("div");
  head.className = "msg-head";
  const who = document.createElement("span");
  who.className = "msg-user";
  who.textContent = me.username;
  const status = document.createElement("span");
  status.className = "msg-status";
  status.textContent = p.note || "Sending…";
  head.append(who, status);
  li.append(head);
  if (p.replyTo) {
    const quote = document.createElement("p");
    quote.className = "msg-quote pending-quote";
    const user = document.createElement("span");
    user.className = "quote-user";
    user.textContent = p.replyTo.user ? nameOf(p.replyTo.user) : "";
    const text = document.createElement("span");
    text.className = "quote-text";
    text.textContent = plainText(p.replyTo.excerpt || "");
    quote.append(user, " ", text);
    li.append(quote);
  }
  // Not "msg-body": that is a sent message's (what the tests and readers wait for).
  const body = document.createElement("div");
  body.className = "pending-body";
  body.textContent = p.body;
  li.append(body);
  return li;
}

/** Shows a post that joined the outbox, when its room is on screen. */
export function pendingAdded(p) {
  if (p.room !== state.current) return;
  $("messages").append(pendingEl(p));
  $("empty").hidden = true;
  state.stick = true;
  if (view.toId !== null) jumpToNewest();
  keepBottom();
  renderJump();
}

/** Updates the state line of a waiting post. */
export function pendingChanged(p) {
  const li = $("messages").querySelector(`li.pending[data-key="${p.key}"]`);
  if (li) li.querySelector(".msg-status").textContent = p.note || "Sending…";
}

/** Takes a post off the page (sent, or given back to the box). */
export function pendingGone(p) {
  const li = $("messages").querySelector(`li.pending[data-key="${p.key}"]`);
  if (li) li.remove();
}

/** Figures for the end-to-end tests: messages drawn and the window's ends. */
export function viewInfo() {
  return { drawn: view.els.size, fromId: view.fromId, toId: view.toId, seenTo: view.seenTo };
}
