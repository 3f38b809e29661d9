// Replies: the message being answered shows above the message box (Escape or × drops it)
// and goes with the next post as `reply_to`; a reply's quote leads to its original, read
// from older history page by page when it is not loaded yet.

import { plainText } from "./format.js";
import { $ } from "./dom.js";
import { excerpt, nameOf, state } from "./state.js";

/** Answer message `msg` with the next post in its room; the focus goes to the message box. */
export function startReply(msg) {
  state.replyTo.set(msg.room, {
    id: msg.id,
    user: { id: msg.user.id, username: msg.user.username },
    excerpt: excerpt(msg.body),
  });
  renderReplyBar();
  const box = $("composer-input");
  if (!box.disabled) box.focus();
}

/** Drops the reply being written in the room on screen; false when there was none. */
export function cancelReply() {
  if (!state.current || !state.replyTo.delete(state.current)) return false;
  renderReplyBar();
  return true;
}

/** "Replying to alice: …" above the box, for the room on screen. */
export function renderReplyBar() {
  const reply = state.current ? state.replyTo.get(state.current) : null;
  $("reply-bar").hidden = !reply;
  // The box's description names the message answered while there is one.
  const described = ["composer-help", "composer-count", "composer-error"];
  if (reply) described.unshift("reply-text");
  $("composer-input").setAttribute("aria-describedby", described.join(" "));
  if (!reply) {
    $("reply-user").textContent = "";
    $("reply-excerpt").textContent = "";
    return;
  }
  $("reply-user").textContent = nameOf(reply.user);
  $("reply-excerpt").textContent = plainText(reply.excerpt);
}

/** The message replied to in `room` was edited (new `body`) or deleted (`body` null). */
export function originalChanged(room, id, body) {
  const reply = state.replyTo.get(room);
  if (!reply || reply.id !== id) return false;
  if (body === null) state.replyTo.delete(room);
  else reply.excerpt = excerpt(body);
  if (room === state.current) renderReplyBar();
  return true;
}
