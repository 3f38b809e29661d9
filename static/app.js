// roomcast browser app, the entry module: joining and leaving rooms, the page's controls,
// and the start. The parts live in js/: state.js (the one state object), api.js (fetch),
// stream.js (EventSource, subscribe queue, resume), rooms.js (events and history),
// render.js (DOM) and composer.js (the message box).

import { api } from "./js/api.js";
import { autosize, send, typing } from "./js/composer.js";
import { $, renderRoom, setConn, showJoinError } from "./js/render.js";
import { forgetRoom, loadEarlier, onBroadcast, switchRoom } from "./js/rooms.js";
import {
  MAX_ROOMS,
  ROOM_RE,
  RoomState,
  loadCurrent,
  loadJoined,
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
});

// ---------------------------------------------------------------------------------------
// Start: restore the joined rooms, then open the stream.

for (const name of loadJoined()) state.rooms.set(name, new RoomState(name));
const saved = loadCurrent();
state.current = saved && state.rooms.has(saved) ? saved : state.rooms.keys().next().value || null;
saveJoined();
renderRoom();
setConn("connecting");
connect();

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
