// roomcast browser app, the entry module: joining and leaving rooms, the page's controls,
// and the start. The parts live in js/: state.js (the one state object), api.js (fetch),
// stream.js (EventSource, subscribe queue, resume), rooms.js (events and history),
// render.js (DOM) and composer.js (the message box).

import { api } from "./js/api.js";
import { autosize, send, sendPending, typing } from "./js/composer.js";
import { $, renderMyRooms, renderRoom, setConn, showJoinError, showNotice } from "./js/render.js";
import {
  forgetRoom,
  loadEarlier,
  loadMembers,
  loadMyRooms,
  onBroadcast,
  onMessageDeleted,
  switchRoom,
} from "./js/rooms.js";
import {
  MAX_ROOMS,
  ROOM_RE,
  RoomState,
  loadCurrent,
  loadJoined,
  me,
  saveJoined,
  state,
} from "./js/state.js";
import { closeStream, connect, streamClosed, syncRooms } from "./js/stream.js";

/**
 * Joins `name` (or shows it, when joined already); false when refused. The subscribe and
 * then the room's latest page follow through the queue (see `syncRooms`); with no stream
 * up, the next `connected` subscribes it with the others.
 */
function joinRoom(name) {
  if (!state.rooms.has(name)) {
    if (state.rooms.size >= MAX_ROOMS) {
      showJoinError(`You can be in at most ${MAX_ROOMS} rooms. Leave one to join another.`);
      return false;
    }
    state.rooms.set(name, new RoomState(name));
    // It may be a room the user was added to since "My rooms" was read.
    if (!state.myRooms.has(name)) loadMyRooms();
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

// One listener for the list: render.js redraws its buttons on every change.
$("room-list").addEventListener("click", (e) => {
  const button = e.target instanceof Element ? e.target.closest("button[data-room]") : null;
  if (!button) return;
  if (button.classList.contains("room-leave")) leaveRoom(button.dataset.room);
  else switchRoom(button.dataset.room);
});

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("join-name");
  const name = input.value.trim().toLowerCase().replace(/^#/, "");
  if (!ROOM_RE.test(name)) {
    showJoinError("Room names are 1–64 characters: a-z, 0-9, _ and -.");
    input.setAttribute("aria-invalid", "true");
    return;
  }
  showJoinError("");
  input.removeAttribute("aria-invalid");
  if (!joinRoom(name)) return;
  input.value = "";
  $("composer-input").focus();
});

$("create-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("create-name");
  const error = $("create-error");
  const name = input.value.trim().toLowerCase().replace(/^#/, "");
  if (!ROOM_RE.test(name)) {
    error.textContent = "Room names are 1–64 characters: a-z, 0-9, _ and -.";
    input.setAttribute("aria-invalid", "true");
    return;
  }
  const visibility = new FormData(e.target).get("visibility") === "private" ? "private" : "public";
  error.textContent = "";
  input.removeAttribute("aria-invalid");
  try {
    const data = await api("POST", "/api/rooms", { name, visibility });
    const room = data.room;
    state.myRooms.set(room.name, { visibility: room.visibility, role: "owner" });
    renderMyRooms();
  } catch (err) {
    error.textContent =
      err.code === "room_taken" ? `#${name} exists already: pick another name, or join it.` : err.message;
    input.setAttribute("aria-invalid", "true");
    return;
  }
  input.value = "";
  $("create").open = false;
  if (joinRoom(name)) $("composer-input").focus();
});

$("my-rooms").addEventListener("click", (e) => {
  const button = e.target instanceof Element ? e.target.closest("button[data-my-room]") : null;
  if (button) joinRoom(button.dataset.myRoom);
});

/** A member change in the room on screen; the panel is read again after it. */
async function changeMember(method, username, body) {
  const room = state.current;
  const error = $("member-error");
  error.textContent = "";
  try {
    await api(method, `/api/rooms/${room}/members/${encodeURIComponent(username)}`, body);
    return true;
  } catch (err) {
    error.textContent =
      err.code === "unknown_user" ? `There is no user called ${username}.` : err.message;
    return false;
  } finally {
    loadMembers(room);
  }
}

$("member-add-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("member-add-name");
  const username = input.value.trim().replace(/^@/, "");
  if (!/^[A-Za-z0-9_]{3,32}$/.test(username)) {
    $("member-error").textContent = "Usernames are 3–32 letters, digits or _.";
    return;
  }
  const role = $("member-add-role").hidden ? "member" : $("member-add-role").value;
  if (await changeMember("PUT", username, { role })) input.value = "";
});

$("members").addEventListener("click", (e) => {
  const button = e.target instanceof Element ? e.target.closest("button[data-username]") : null;
  if (!button) return;
  if (button.classList.contains("member-remove")) changeMember("DELETE", button.dataset.username);
  else if (button.classList.contains("member-role-set")) {
    changeMember("PUT", button.dataset.username, { role: button.dataset.role });
  }
});

$("room-leave-membership").addEventListener("click", async () => {
  const room = state.current;
  if (!room) return;
  try {
    await api("DELETE", `/api/rooms/${room}/members/${encodeURIComponent(me.username)}`);
  } catch (err) {
    $("member-error").textContent = err.message;
    return;
  }
  state.myRooms.delete(room);
  renderMyRooms();
  leaveRoom(room);
});

// Delete buttons on messages: one listener for the list (render.js draws the buttons).
$("messages").addEventListener("click", async (e) => {
  const button = e.target instanceof Element ? e.target.closest("button.msg-delete") : null;
  if (!button) return;
  const room = state.current;
  const id = Number(button.dataset.id);
  button.disabled = true;
  try {
    await api("DELETE", `/api/rooms/${room}/messages/${id}`);
    // The stream's `message_deleted` says the same; whichever comes first removes it.
    onMessageDeleted({ room, message_id: id });
  } catch (err) {
    button.disabled = false;
    if (err.code === "unknown_message") onMessageDeleted({ room, message_id: id });
    else $("composer-error").textContent = `Could not delete the message: ${err.message}`;
  }
});

$("notice-close").addEventListener("click", () => showNotice(""));

// Someone may have added the user to a room meanwhile (that pushes nothing): read "My rooms"
// again whenever the page comes back into view.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") loadMyRooms();
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
  closeStream();
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
      onBroadcast(data.broadcast);
    } catch (err) {
      status.textContent = err.message;
    }
  });
}

window.addEventListener("online", () => {
  if (streamClosed()) connect();
  else sendPending();
});

// ---------------------------------------------------------------------------------------
// Start: restore the joined rooms (the server's list), then open the stream.

setConn("connecting");
// The members panel starts open where there is room for it; on a phone it would push the
// messages off the screen, so there it waits for a tap.
$("members-panel").open = !matchMedia("(max-width: 640px)").matches;
for (const name of await loadJoined()) state.rooms.set(name, new RoomState(name));
const saved = loadCurrent();
state.current = saved && state.rooms.has(saved) ? saved : state.rooms.keys().next().value || null;
saveJoined(true);
renderRoom();
connect();
loadMyRooms();

// For the end-to-end tests and the curious: read-only views of the state.
window.roomcast = {
  get connectionId() {
    return state.link ? state.link.id : null;
  },
  get lastSeenId() {
    return state.lastSeenId;
  },
  get current() {
    return state.current;
  },
  get streamsOpened() {
    return state.streamsOpened;
  },
  get resumedBy() {
    return state.resumedBy;
  },
};
