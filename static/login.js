// The login page's one script: says why the page is here when the chat sent the reader to
// `/login?reason=…` (see js/api.js). Only known reasons show, in the page's own words, so a
// link cannot put text of its choosing on the page.

const REASONS = {
  session_ended:
    "Your session has ended: it expired, was closed by the server or an administrator, " +
    "or the server's keys changed. Log in again to continue.",
  account_deleted: "Your account is deleted. Its messages stay, shown as from a deleted user.",
};

const reason = new URLSearchParams(location.search).get("reason");
const text = reason && Object.hasOwn(REASONS, reason) ? REASONS[reason] : null;
const el = document.getElementById("login-notice");
if (el && text) {
  el.textContent = text;
  el.hidden = false;
}
