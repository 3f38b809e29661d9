// Everything the page draws, from `state`. Every user-provided string (message bodies,
// usernames, room names) is rendered with textContent, never as HTML.

import { me, state } from "./state.js";

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Shows the stream's state: "connecting", "live" or "reconnecting". */
export function setConn(conn) {
  const el = $("conn");
  el.classList.remove("conn-live", "conn-reconnecting", "conn-connecting");
  el.classList.add(`conn-${conn}`);
  el.dataset.state = conn;
  $("conn-text").textContent =
    conn === "live" ? "Live" : conn === "reconnecting" ? "Reconnecting…" : "Connecting…";
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFmt = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

/** A timestamp as the reader's clock shows it; the date too when it is not today. */
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

function currentRoom() {
  return state.current ? state.rooms.get(state.current) : undefined;
}

/** Puts one message of the current room in place (ids ascending). */
export function insertMessage(msg) {
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

/** Redraws the current room's messages and scrolls to the newest. */
export function renderMessages() {
  const list = $("messages");
  const room = currentRoom();
  list.replaceChildren(...(room ? room.ids.map((id) => messageEl(room.messages.get(id))) : []));
  $("empty").hidden = !!(room && room.ids.length);
  $("empty").textContent = room ? "No messages yet. Say hello!" : "Join a room to start chatting.";
  renderHistoryControls();
  const scroller = $("scroller");
  scroller.scrollTop = scroller.scrollHeight;
}

/** "Load earlier messages" while there may be more, "Start of the room's history" after. */
export function renderHistoryControls() {
  const room = currentRoom();
  $("load-earlier").hidden = !room || !room.loaded || !room.hasMore || room.ids.length === 0;
  $("history-start").hidden = !room || room.hasMore || room.ids.length === 0;
}

/**
 * The room list. Its buttons carry `data-room`; the clicks are handled once on the list
 * (see app.js), so redrawing it adds no listeners.
 */
export function renderRooms() {
  const list = $("room-list");
  const items = [];
  for (const room of state.rooms.values()) {
    const li = document.createElement("li");
    li.className = "room-item";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "room-open";
    open.dataset.room = room.name;
    const label = document.createElement("span");
    label.textContent = `#${room.name}`;
    open.append(label);
    if (room.name === state.current) {
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
    const leave = document.createElement("button");
    leave.type = "button";
    leave.className = "room-leave quiet";
    leave.dataset.room = room.name;
    leave.textContent = "×";
    leave.title = `Leave #${room.name}`;
    leave.setAttribute("aria-label", `Leave #${room.name}`);
    li.append(open, leave);
    items.push(li);
  }
  list.replaceChildren(...items);
}

/** Who is in the current room, by name, with "(you)" after the reader. */
export function renderPresence() {
  const list = $("presence");
  const room = currentRoom();
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

/** "… is typing" for the current room. */
export function renderTyping() {
  const room = currentRoom();
  const names = room ? [...room.typing.values()].map((t) => t.username) : [];
  const el = $("typing");
  if (!names.length) el.textContent = "";
  else if (names.length === 1) el.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) el.textContent = `${names[0]} and ${names[1]} are typing…`;
  else el.textContent = "Several people are typing…";
}

/** Redraws everything about the current room; it has been read, so its unread count goes. */
export function renderRoom() {
  const room = currentRoom();
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

/** Shows a broadcast in the banner. */
export function showBanner(b) {
  $("banner-text").textContent = b.body;
  const t = $("banner-time");
  t.dateTime = b.sent_at;
  t.textContent = formatTime(b.sent_at);
  $("banner").hidden = false;
}

/** The message under the join form ("" clears it). */
export function showJoinError(text) {
  $("join-error").textContent = text;
}
