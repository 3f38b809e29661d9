// Everything the page draws around the messages (messages.js draws those), from `state`.
// Every user-provided string (message bodies, usernames, room names) is rendered with
// textContent, never as HTML.

import { $, formatTime, keepFocus } from "./dom.js";
import { renderHistoryControls, renderMessages } from "./messages.js";
import { markSeen, renderTitle } from "./readstate.js";
import { me, roleIn, state } from "./state.js";

export { renderHistoryControls, renderMessages };

/** Shows the stream's state: "connecting", "live" or "reconnecting". */
export function setConn(conn) {
  const el = $("conn");
  el.classList.remove("conn-live", "conn-reconnecting", "conn-connecting");
  el.classList.add(`conn-${conn}`);
  el.dataset.state = conn;
  $("conn-text").textContent =
    conn === "live" ? "Live" : conn === "reconnecting" ? "Reconnecting…" : "Connecting…";
}

function currentRoom() {
  return state.current ? state.rooms.get(state.current) : undefined;
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
    const mine = state.myRooms.get(room.name);
    if (mine && mine.visibility === "private") {
      const lock = document.createElement("span");
      lock.className = "room-private";
      lock.textContent = "private";
      open.append(lock);
    }
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
    if (room.unread > 0 && room.mentioned) {
      const at = document.createElement("span");
      at.className = "unread-mention";
      at.title = "An unread message mentions you";
      const sign = document.createElement("span");
      sign.setAttribute("aria-hidden", "true");
      sign.textContent = "@";
      const hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.textContent = " (mentions you)";
      at.append(sign, hidden);
      open.append(at);
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
  keepFocus(list, () => list.replaceChildren(...items));
  // The list may scroll: keep the current room's entry in view.
  const current = list.querySelector("li.current");
  if (current) scrollIntoList(list, current);
  $("rooms-toggle-count").textContent = unreadTotal() ? ` (${unreadTotal()} unread)` : "";
  renderTitle(unreadTotal());
}

function unreadTotal() {
  let n = 0;
  for (const room of state.rooms.values()) n += room.unread;
  return n;
}

/** Scrolls the list `list` (only) so that `item` is in view. */
function scrollIntoList(list, item) {
  const l = list.getBoundingClientRect();
  const r = item.getBoundingClientRect();
  if (list.scrollWidth > list.clientWidth) {
    if (r.left < l.left) list.scrollLeft -= l.left - r.left;
    else if (r.right > l.right) list.scrollLeft += r.right - l.right;
  }
  if (list.scrollHeight > list.clientHeight) {
    if (r.top < l.top) list.scrollTop -= l.top - r.top;
    else if (r.bottom > l.bottom) list.scrollTop += r.bottom - l.bottom;
  }
}

/**
 * "My rooms": the rooms the user created or was added to, with visibility and role. A
 * button joins (or shows) one; clicks are handled once on the list (see app.js).
 */
export function renderMyRooms() {
  const list = $("my-rooms");
  const items = [];
  const names = [...state.myRooms.keys()].sort();
  for (const name of names) {
    const info = state.myRooms.get(name);
    const li = document.createElement("li");
    li.className = "my-room";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "my-room-open quiet";
    open.dataset.myRoom = name;
    const label = document.createElement("span");
    label.textContent = `#${name}`;
    const meta = document.createElement("span");
    meta.className = "my-room-meta";
    meta.textContent = `${info.visibility}, ${info.role}`;
    open.append(label, " ", meta);
    li.append(open);
    items.push(li);
  }
  keepFocus(list, () => list.replaceChildren(...items));
  $("my-rooms-empty").hidden = names.length > 0;
}

/** The user's power in the room on screen: "owner" (admins too), "moderator" or null. */
function powerHere() {
  if (me.role === "admin") return "owner";
  const role = state.current ? roleIn(state.current) : null;
  return role === "owner" || role === "moderator" ? role : null;
}

/**
 * The members panel of the room on screen, for a created room the user belongs to: who is
 * a member with which role; owners and moderators add and remove, the owner names
 * moderators, a member leaves. Hidden for rooms joined by name.
 */
export function renderMembers() {
  const panel = $("members-panel");
  const m = state.members;
  if (!m || m.room !== state.current) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  $("members-title").textContent = `Members of #${m.room} (${m.members.length})`;
  const power = powerHere();
  const list = $("members");
  const items = m.members.map((member) => {
    const li = document.createElement("li");
    li.className = "member";
    li.dataset.username = member.username;
    const name = document.createElement("span");
    name.className = "member-name";
    name.textContent = member.username;
    const role = document.createElement("span");
    role.className = `member-role role-${member.role}`;
    role.textContent = member.role;
    li.append(name, " ", role);
    const self = member.id === me.id;
    if (power === "owner" && !self && member.role !== "owner") {
      const next = member.role === "moderator" ? "member" : "moderator";
      const text = next === "moderator" ? "Make moderator" : "Make member";
      li.append(memberButton("member-role-set", member.username, text, next));
    }
    // Owners remove anyone but the owner; moderators remove plain members.
    const mayRemove =
      !self &&
      member.role !== "owner" &&
      (power === "owner" || (power === "moderator" && member.role === "member"));
    if (mayRemove) li.append(memberButton("member-remove", member.username, "Remove"));
    return li;
  });
  keepFocus(list, () => list.replaceChildren(...items));
  $("member-add-form").hidden = !power;
  $("member-add-role").hidden = power !== "owner";
  $("member-add-role-label").hidden = power !== "owner";
  const role = roleIn(m.room);
  $("room-leave-membership").hidden = !role || role === "owner";
}

/** A button of a member's row; clicks are handled once on the list (see app.js). */
function memberButton(cls, username, text, role) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `${cls} quiet`;
  b.dataset.username = username;
  b.textContent = text;
  b.setAttribute("aria-label", `${text}: ${username}`);
  if (role) b.dataset.role = role;
  return b;
}

/** A notice above the room (e.g. "you were removed"); "" takes it down. */
export function showNotice(text) {
  $("notice-text").textContent = text;
  $("notice").hidden = !text;
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
  $("people-toggle-count").textContent = room ? String(people.length) : "";
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
  if (room) {
    room.unread = 0;
    room.mentioned = false;
  }
  renderRooms();
  renderMessages();
  renderPresence();
  renderTyping();
  renderMembers();
  markSeen();
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
