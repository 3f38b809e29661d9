// roomcast browser app, the entry module: joining and leaving rooms, the page's controls,
// focus and the keyboard, and the start. The parts live in js/: state.js (the one state
// object), api.js (fetch), stream.js (EventSource, subscribe queue, resume), rooms.js
// (events and history), messages.js (the message list), format.js (message formatting),
// render.js (the rest of the DOM), composer.js (the message box), outbox.js (the send
// queue), edit.js (editing in place), reactions.js (reactions and their picker), reply.js
// (replies), mentions.js (`@` completion) and panels.js (dialogs, overlays, the undo toast).

import { api, whenSessionEnds } from "./js/api.js";
import { autosize, composerError, loadDraft, onInput, renderCounter, send } from "./js/composer.js";
import { startEdit } from "./js/edit.js";
import { Autocomplete } from "./js/mentions.js";
import {
  jumpToNewest,
  keepBottom,
  messageLi,
  onScroll,
  pendingAdded,
  pendingChanged,
  pendingGone,
  renderJump,
  showEarlier,
  viewInfo,
} from "./js/messages.js";
import { openPicker, toggleReaction } from "./js/reactions.js";
import { cancelReply, renderReplyBar, startReply } from "./js/reply.js";
import {
  clearOutbox,
  giveBack,
  pump,
  restoreOutbox,
  retryNow,
  showQueueWith,
  whenRefused,
} from "./js/outbox.js";
import {
  closePanels,
  confirmAction,
  hideToast,
  openDialog,
  openDirectory,
  openPanel,
  phone,
  renderDirectory,
  showToast,
} from "./js/panels.js";
import { $ } from "./js/dom.js";
import { renderMyRooms, renderRoom, renderRooms, setConn, showJoinError, showNotice } from "./js/render.js";
import {
  drawTimes,
  forgetRoom,
  loadEarlier,
  loadMembers,
  loadMyRooms,
  onBroadcast,
  onMessage,
  onMessageDeleted,
  showOriginal,
  switchRoom,
} from "./js/rooms.js";
import {
  MAX_ROOMS,
  ROOM_RE,
  RoomState,
  clearDrafts,
  keepDraftsAfterSessionEnd,
  loadCurrent,
  loadJoined,
  me,
  saveDraft,
  saveJoined,
  state,
} from "./js/state.js";
import { askToNotify, markSeen, renderNotifyButton, whenRecounted } from "./js/readstate.js";
import { closeSearch, runSearch } from "./js/search.js";
import { closeStream, connect, streamClosed, syncRooms } from "./js/stream.js";
import "./js/settings.js";
import "./js/tokens.js";

// ---------------------------------------------------------------------------------------
// Focus

/**
 * Where the focus goes after an action that leaves nothing better to focus: the message
 * box (on a phone the room itself, so that no keyboard pops up unasked).
 */
function focusHome() {
  const box = $("composer-input");
  if (!box.disabled && !phone.matches) box.focus();
  else $("main").focus();
}

// ---------------------------------------------------------------------------------------
// Rooms

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

/** Opens a room from a list: on screen, the panel closed, the focus in the room. */
function openRoom(name) {
  if (!joinRoom(name)) return;
  closePanels(false);
  focusHome();
}

/**
 * Leaves `name` (the list's ×): nothing is lost (its history stays on the server), and an
 * undo toast brings it back. The focus goes to the next room in the list.
 */
function leaveRoom(name) {
  const names = [...state.rooms.keys()];
  const at = names.indexOf(name);
  if (!forgetRoom(name)) return;
  showJoinError("");
  syncRooms();
  showToast(`You left #${name}.`, () => {
    if (joinRoom(name)) focusHome();
  });
  const next = names[at + 1] || names[at - 1];
  const button = next && $("room-list").querySelector(`button.room-open[data-room="${next}"]`);
  if (button) button.focus();
  else $("join-name").focus();
}

$("room-list").addEventListener("click", (e) => {
  const button = e.target instanceof Element ? e.target.closest("button[data-room]") : null;
  if (!button) return;
  if (button.classList.contains("room-leave")) leaveRoom(button.dataset.room);
  else openRoom(button.dataset.room);
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
  closePanels(false);
  focusHome();
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
  openRoom(name);
});

$("my-rooms").addEventListener("click", (e) => {
  const button = e.target instanceof Element ? e.target.closest("button[data-my-room]") : null;
  if (button) openRoom(button.dataset.myRoom);
});

// The room directory.
$("directory-open").addEventListener("click", (e) => openDirectory(e.currentTarget));
$("directory-search").addEventListener("input", renderDirectory);
$("directory-list").addEventListener("click", (e) => {
  const button = e.target instanceof Element ? e.target.closest("button[data-room]") : null;
  if (!button) return;
  const name = button.dataset.room;
  if (!ROOM_RE.test(name)) return;
  $("directory").close();
  openRoom(name);
});

// ---------------------------------------------------------------------------------------
// Members

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
    await loadMembers(room);
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
  input.focus();
});

$("members").addEventListener("click", async (e) => {
  const button = e.target instanceof Element ? e.target.closest("button[data-username]") : null;
  if (!button) return;
  const username = button.dataset.username;
  const row = (name) => $("members").querySelector(`li.member[data-username="${name}"]`);
  if (button.classList.contains("member-remove")) {
    const ok = await confirmAction({
      title: `Remove ${username}?`,
      text: `${username} will no longer be a member of #${state.current}.`,
      ok: "Remove",
    });
    if (!ok) return;
    const li = row(username);
    const after = li && (li.nextElementSibling || li.previousElementSibling);
    const afterName = after ? after.dataset.username : null;
    await changeMember("DELETE", username);
    // The next member's first button, else the add form.
    const next = afterName && row(afterName);
    const target = (next && next.querySelector("button")) || $("member-add-name");
    if (target && !target.closest("[hidden]")) target.focus();
    else focusHome();
  } else if (button.classList.contains("member-role-set")) {
    await changeMember("PUT", username, { role: button.dataset.role });
    const again = row(username);
    const same = again && again.querySelector("button.member-role-set");
    if (same) same.focus();
  }
});

$("room-leave-membership").addEventListener("click", async () => {
  const room = state.current;
  if (!room) return;
  // Read now: the stream's `removed` may take the room off the page before the answer.
  const isPrivate = state.myRooms.get(room)?.visibility === "private";
  const ok = await confirmAction({
    title: `Leave #${room} for good?`,
    text: isPrivate
      ? `#${room} is private: you will no longer be able to read or post there unless someone adds you again.`
      : `You will no longer be a member of #${room}.`,
    ok: "Leave",
  });
  if (!ok) return;
  try {
    await api("DELETE", `/api/rooms/${room}/members/${encodeURIComponent(me.username)}`);
  } catch (err) {
    $("member-error").textContent = err.message;
    return;
  }
  state.myRooms.delete(room);
  renderMyRooms();
  if (isPrivate) {
    // The server took it off the stream already (and says so with `removed`).
    if (forgetRoom(room)) syncRooms();
    showNotice(`You left #${room}.`);
    closePanels(false);
    focusHome();
  } else {
    loadMembers(room);
    showNotice(`You are no longer a member of #${room}.`);
    $("notice-close").focus();
  }
});

// ---------------------------------------------------------------------------------------
// Messages

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
const composerMentions = new Autocomplete($("composer-input"), $("mention-list"), onInput);
$("composer-input").addEventListener("keydown", (e) => {
  if (composerMentions.onKey(e)) return;
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  } else if (e.key === "Escape" && cancelReply()) {
    e.preventDefault();
  } else if (e.key === "ArrowUp" && !e.target.value && !e.altKey && !e.ctrlKey && !e.metaKey && !e.shiftKey) {
    // An empty box: Arrow Up edits the last message of one's own in sight.
    const mine = [...$("messages").querySelectorAll("li.msg.mine[data-id]")].at(-1);
    if (mine && startEdit(Number(mine.dataset.id), true)) e.preventDefault();
  }
});
$("composer-input").addEventListener("input", onInput);
$("reply-cancel").addEventListener("click", () => {
  cancelReply();
  focusHome();
});

// Posts on their way show under the messages until the server stores them; a stored one is
// then shown as any message is.
showQueueWith({
  added: pendingAdded,
  changed: pendingChanged,
  gone: pendingGone,
  sent: (message) => onMessage(message, false),
});

// Other tabs' read markers: the room list is drawn again with the counts read anew.
whenRecounted(renderRooms);

// A post the server refuses for good goes back into its room's box, with the reason.
whenRefused((p, err) => {
  const onScreen = state.current === p.room;
  giveBack(p.room, p.body, onScreen ? $("composer-input") : null);
  const why =
    p.replyTo && err.code === "unknown_message"
      ? "the message it replied to was deleted."
      : err.message;
  if (onScreen) {
    autosize();
    renderCounter();
    composerError(`Not sent: ${why} Your message is back in the box.`, true);
  } else {
    showNotice(`A message to #${p.room} was not sent (${why}); it is back in that room's message box.`);
  }
});

// A message's actions, reactions and quote: one listener for the list (messages.js draws
// them).
$("messages").addEventListener("click", async (e) => {
  const el = e.target instanceof Element ? e.target : null;
  const li = el && el.closest("li.msg[data-id]");
  if (!li) return;
  const id = Number(li.dataset.id);
  const room = state.current && state.rooms.get(state.current);
  const msg = room && room.messages.get(id);
  const chip = el.closest("button.reaction");
  if (chip) {
    const why = await toggleReaction(id, chip.dataset.emoji);
    if (why) composerError(`Could not change the reaction: ${why}`);
  } else if (el.closest("button.msg-react, button.reaction-add")) {
    openPicker(id, el.closest("button"));
  } else if (el.closest("button.msg-reply") && msg) {
    startReply(msg);
  } else if (el.closest("button.msg-edit")) {
    startEdit(id);
  } else if (el.closest("button.msg-quote")) {
    showOriginal(Number(el.closest("button.msg-quote").dataset.replyTo));
  }
});

// A message's actions are one Tab stop: the arrow keys move between them (the toolbar
// pattern), and the last one used is where Tab comes back to.
$("messages").addEventListener("keydown", (e) => {
  const bar = e.target instanceof Element ? e.target.closest(".msg-actions") : null;
  if (!bar) return;
  const buttons = [...bar.querySelectorAll("button")];
  const at = buttons.indexOf(e.target);
  const n = buttons.length;
  const moves = { ArrowRight: at + 1, ArrowLeft: at - 1 + n, Home: 0, End: n - 1 };
  if (!(e.key in moves) || at < 0) return;
  buttons[moves[e.key] % n].focus();
  e.preventDefault();
});
$("messages").addEventListener("focusin", (e) => {
  const bar = e.target instanceof Element ? e.target.closest(".msg-actions") : null;
  if (!bar) return;
  for (const b of bar.querySelectorAll("button")) b.tabIndex = b === e.target ? 0 : -1;
});

// Delete buttons on messages.
$("messages").addEventListener("click", async (e) => {
  const button = e.target instanceof Element ? e.target.closest("button.msg-delete") : null;
  if (!button) return;
  const room = state.current;
  const id = Number(button.closest("li.msg").dataset.id);
  const ok = await confirmAction({
    title: "Delete this message?",
    text: "It is removed for everyone in the room. This cannot be undone.",
    ok: "Delete",
  });
  if (!ok || state.current !== room) return;
  // Where the focus goes once it is gone: the next message's Delete, else the one before.
  const li = messageLi(id);
  const near = (from, step) => {
    for (let el = from && from[step]; el; el = el[step]) {
      const del = el.querySelector && el.querySelector("button.msg-delete");
      if (del) return del;
    }
    return null;
  };
  const next = near(li, "nextElementSibling") || near(li, "previousElementSibling");
  button.disabled = true;
  try {
    await api("DELETE", `/api/rooms/${room}/messages/${id}`);
    // The stream's `message_deleted` says the same; whichever comes first removes it.
    onMessageDeleted({ room, message_id: id });
  } catch (err) {
    button.disabled = false;
    if (err.code === "unknown_message") onMessageDeleted({ room, message_id: id });
    else {
      composerError(`Could not delete the message: ${err.message}`);
      return;
    }
  }
  if (next && next.isConnected) next.focus();
  else focusHome();
});

$("scroller").addEventListener("scroll", () => {
  if (onScroll() === "load") loadEarlier();
});
$("load-earlier").addEventListener("click", () => {
  if (!showEarlier()) loadEarlier();
});
$("jump").addEventListener("click", () => {
  jumpToNewest();
  focusHome();
});
// The view stays at the bottom when the room gets shorter (a phone's keyboard, the typing
// line) or its messages taller.
const resized = new ResizeObserver(() => keepBottom());
resized.observe($("scroller"));
resized.observe($("messages"));
if (window.visualViewport) window.visualViewport.addEventListener("resize", keepBottom);

// ---------------------------------------------------------------------------------------
// Notices, panels and the keyboard

$("notice-close").addEventListener("click", () => {
  showNotice("");
  focusHome();
});
$("banner-close").addEventListener("click", () => {
  $("banner").hidden = true;
  focusHome();
});

for (const toggle of document.querySelectorAll(".panel-toggle")) {
  toggle.addEventListener("click", () => {
    const id = toggle.getAttribute("aria-controls");
    if ($(id).classList.contains("open")) closePanels();
    else openPanel(id, toggle);
  });
}
for (const close of document.querySelectorAll(".panel-close")) {
  close.addEventListener("click", () => closePanels());
}
$("scrim").addEventListener("click", () => closePanels());

document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || e.defaultPrevented) return;
  // An open <dialog> closes itself on Escape.
  if (document.querySelector("dialog[open]")) return;
  const create = $("create");
  if (create.open && create.contains(document.activeElement)) {
    create.open = false;
    create.querySelector("summary").focus();
  } else if (closePanels()) {
    // closed the rooms or people panel
  } else if (!$("toast").hidden) {
    hideToast();
    focusHome();
  } else if (!$("notice").hidden) {
    showNotice("");
    focusHome();
  } else if (!$("jump").hidden) {
    jumpToNewest();
    focusHome();
  } else return;
  e.preventDefault();
});

// Someone may have changed the user's rooms while this page was away: read "My rooms"
// again whenever the page comes back into view.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") loadMyRooms();
  // Back in view at the newest message: it has been seen now.
  markSeen();
});

// ---------------------------------------------------------------------------------------
// Search and notifications

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runSearch();
});
$("search-close").addEventListener("click", () => {
  closeSearch();
  $("search-q").focus();
});
$("search-results").addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  e.preventDefault();
  closeSearch();
  $("search-q").focus();
});
$("search-list").addEventListener("click", (e) => {
  const hit = e.target.closest("button.search-hit");
  if (hit) openResult(hit.dataset.room, Number(hit.dataset.id));
});
// `/` anywhere but in a text field goes to the search box.
document.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
  const t = e.target;
  if (t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  e.preventDefault();
  $("search-q").focus();
  $("search-q").select();
});

/**
 * Opens search result `id` in its room (joined first when it is not), with the history
 * around it loaded, and brings it into sight.
 */
async function openResult(name, id) {
  if (!joinRoom(name)) return;
  closeSearch();
  closePanels(false);
  const room = state.rooms.get(name);
  // The room's latest page comes after its subscribe; the message is found from there.
  for (let i = 0; i < 100 && !room.loaded; i++) await new Promise((r) => setTimeout(r, 50));
  if (state.current === name) await showOriginal(id);
}

$("notify").addEventListener("click", async () => {
  await askToNotify();
  focusHome();
});
renderNotifyButton();

$("logout").addEventListener("click", async () => {
  // Logging out on purpose: what this browser kept for the user goes.
  $("composer-input").value = "";
  clearDrafts();
  clearOutbox();
  try {
    await api("POST", "/api/logout");
  } catch {
    /* logged out either way */
  }
  closeStream();
  location.assign("/login");
});

window.addEventListener("online", () => {
  if (streamClosed()) connect();
  else retryNow();
});

// ---------------------------------------------------------------------------------------
// Admin

const adminDialog = $("admin");
if (adminDialog) {
  const numberFmt = new Intl.NumberFormat();
  const labels = {
    connections: "Open streams",
    users_online: "Users online",
    rooms: "Rooms with people",
    subscriptions: "Subscriptions",
    messages_stored: "Messages stored",
    events_delivered: "Events delivered",
    slow_disconnects: "Slow disconnects",
  };
  const loadStats = async () => {
    const dl = $("stats");
    try {
      const stats = await api("GET", "/api/admin/stats");
      dl.replaceChildren(
        ...Object.entries(labels).flatMap(([key, label]) => {
          const dt = document.createElement("dt");
          dt.textContent = label;
          const dd = document.createElement("dd");
          dd.textContent = numberFmt.format(stats[key] ?? 0);
          dd.dataset.stat = key;
          return [dt, dd];
        }),
      );
    } catch (err) {
      const dt = document.createElement("dt");
      dt.textContent = "Stats";
      const dd = document.createElement("dd");
      dd.textContent = err.message;
      dl.replaceChildren(dt, dd);
    }
  };
  $("admin-open").addEventListener("click", (e) => {
    openDialog(adminDialog, e.currentTarget);
    $("stats-refresh").focus();
    loadStats();
  });
  $("stats-refresh").addEventListener("click", loadStats);

  $("broadcast-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("broadcast-input");
    const status = $("broadcast-status");
    if (!input.value.trim()) {
      status.textContent = "Write the broadcast first.";
      input.focus();
      return;
    }
    try {
      const data = await api("POST", "/api/admin/broadcast", { body: input.value });
      input.value = "";
      status.textContent = "Sent to everyone.";
      onBroadcast(data.broadcast);
    } catch (err) {
      status.textContent = err.message;
    }
    input.focus();
  });

  $("user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const action = e.submitter ? e.submitter.dataset.action : "disconnect";
    const input = $("user-name");
    const status = $("user-status");
    const username = input.value.trim().replace(/^@/, "");
    if (!/^[A-Za-z0-9_]{3,32}$/.test(username)) {
      status.textContent = "Usernames are 3–32 letters, digits or _.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    if (action === "ban") {
      const ok = await confirmAction({
        title: `Ban ${username}?`,
        text: `${username} is logged out everywhere at once and cannot log in until unbanned.`,
        ok: "Ban",
      });
      if (!ok) return;
    }
    const path = `/api/admin/users/${encodeURIComponent(username)}`;
    try {
      if (action === "disconnect") {
        const r = await api("POST", `${path}/disconnect`);
        status.textContent = `${username}: ${r.closed} stream${r.closed === 1 ? "" : "s"} closed (they reconnect by themselves).`;
      } else if (action === "ban") {
        const r = await api("POST", `${path}/ban`);
        status.textContent = `${username} is banned; ${r.closed} stream${r.closed === 1 ? "" : "s"} closed.`;
      } else {
        await api("DELETE", `${path}/ban`);
        status.textContent = `${username} may log in again.`;
      }
    } catch (err) {
      status.textContent =
        err.code === "unknown_user" ? `There is no user called ${username}.` : err.message;
    }
    loadStats();
    if (e.submitter) e.submitter.focus();
  });
}

// ---------------------------------------------------------------------------------------
// Start: restore the joined rooms (the server's list), then open the stream.

setConn("connecting");
// The members panel starts open where there is room for it.
$("members-panel").open = !phone.matches;
restoreOutbox();
for (const r of await loadJoined()) {
  const room = new RoomState(r.name);
  room.lastReadId = r.last_read_id;
  room.unread = r.unread;
  room.mentioned = r.mentions > 0;
  state.rooms.set(r.name, room);
}
const saved = loadCurrent();
state.current = saved && state.rooms.has(saved) ? saved : state.rooms.keys().next().value || null;
if (state.current) {
  // "New messages" below the marker the room had.
  const first = state.rooms.get(state.current);
  first.dividerAt = first.unread > 0 ? first.lastReadId : null;
}
saveJoined(true);
renderRoom();
loadDraft();
renderReplyBar();
renderJump();
connect();
loadMyRooms();
pump();

// The session ended elsewhere: nothing typed here is lost (logging out here forgets it).
whenSessionEnds(() => {
  keepDraftsAfterSessionEnd();
  saveDraft(state.current, $("composer-input").value);
});
// Drafts are saved as they are typed; this keeps the last keystrokes of a closing tab too.
window.addEventListener("pagehide", () => saveDraft(state.current, $("composer-input").value));

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
  get outbox() {
    return state.outbox.length;
  },
  get view() {
    return viewInfo();
  },
  get drawTimes() {
    return [...drawTimes];
  },
  get stick() {
    return state.stick;
  },
  get editing() {
    return state.editing ? { room: state.editing.room, id: state.editing.id } : null;
  },
};
