// The "Settings" dialog: deleting one's own account, after asking for the password again
// (`DELETE /api/me`). Once deleted, the page leaves for the login page, which says so.

import { api } from "./api.js";
import { openDialog } from "./panels.js";
import { $ } from "./dom.js";

const dialog = $("settings");
const start = $("account-delete-start");
const form = $("account-delete-form");
const password = $("account-delete-password");

/** The answers the server may give, in the page's words. */
const ERRORS = {
  invalid_credentials: "That is not your password. Your account is unchanged.",
  rate_limited: "Too many attempts from here. Wait a minute and try again.",
};

function showError(text) {
  $("account-delete-error").textContent = text;
  if (text) password.setAttribute("aria-invalid", "true");
  else password.removeAttribute("aria-invalid");
}

/** Shows or hides the confirmation form; the focus goes to what appears. */
function asking(open) {
  form.hidden = !open;
  start.hidden = open;
  start.setAttribute("aria-expanded", String(open));
  password.value = "";
  showError("");
  (open ? password : start).focus();
}

start.addEventListener("click", () => asking(true));
$("account-delete-cancel").addEventListener("click", () => asking(false));
password.addEventListener("input", () => showError(""));

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!password.value) {
    showError("Type your password to confirm.");
    password.focus();
    return;
  }
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    await api("DELETE", "/api/me", { password: password.value });
    location.assign("/login?reason=account_deleted");
  } catch (err) {
    showError(ERRORS[err.code] || err.message);
    password.focus();
  } finally {
    submit.disabled = false;
  }
});

dialog.addEventListener("close", () => {
  form.hidden = true;
  start.hidden = false;
  start.setAttribute("aria-expanded", "false");
  password.value = "";
  showError("");
});

$("settings-open").addEventListener("click", (e) => {
  openDialog(dialog, e.currentTarget);
  start.focus();
});
