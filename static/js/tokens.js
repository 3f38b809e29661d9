// The "Access tokens" dialog: make a token (its secret shown once, with a copy button),
// list them (name, made, last used), revoke one after asking.

import { api } from "./api.js";
import { confirmAction, openDialog } from "./panels.js";
import { $, formatTime } from "./dom.js";

/** The answers to a token name the server refused, next to the field. */
const NAME_ERRORS = {
  invalid_name: "A token name is 1–64 characters.",
  too_many_tokens: "You hold as many tokens as you may. Revoke one first.",
};

const dialog = $("tokens");

/** One row of the list. */
function tokenItem(t) {
  const li = document.createElement("li");
  li.className = "token-item";
  li.dataset.tokenId = t.id;
  const name = document.createElement("span");
  name.className = "token-name";
  name.textContent = t.name;
  const meta = document.createElement("span");
  meta.className = "token-meta";
  const made = document.createElement("span");
  made.textContent = `Created ${formatTime(t.created_at)}`;
  const used = document.createElement("span");
  used.textContent = t.last_used_at ? `Last used ${formatTime(t.last_used_at)}` : "Never used";
  meta.append(made, " · ", used);
  const revoke = document.createElement("button");
  revoke.type = "button";
  revoke.className = "danger token-revoke";
  revoke.textContent = "Revoke";
  revoke.setAttribute("aria-label", `Revoke token ${t.name}`);
  revoke.addEventListener("click", () => revokeToken(t, li));
  li.append(name, meta, revoke);
  return li;
}

/** Reads the list again. */
async function loadTokens() {
  const status = $("tokens-status");
  try {
    const data = await api("GET", "/api/me/tokens");
    $("token-list").replaceChildren(...data.tokens.map(tokenItem));
    status.textContent = data.tokens.length
      ? `${data.tokens.length} token${data.tokens.length === 1 ? "" : "s"}, newest first.`
      : "No tokens yet.";
  } catch (err) {
    status.textContent = `The tokens could not be read: ${err.message}`;
  }
}

async function revokeToken(t, li) {
  const ok = await confirmAction({
    title: `Revoke “${t.name}”?`,
    text: "Scripts using this token stop working at once, and its open streams close.",
    ok: "Revoke",
  });
  if (!ok) return;
  // Where the focus goes once the row is gone: the next row's button, else the name field.
  const next = li.nextElementSibling || li.previousElementSibling;
  let said;
  try {
    await api("DELETE", `/api/me/tokens/${encodeURIComponent(t.id)}`);
    said = `“${t.name}” is revoked.`;
  } catch (err) {
    said = err.code === "unknown_token" ? `“${t.name}” was already revoked.` : err.message;
  }
  await loadTokens();
  // After the list's own count, which the reload wrote.
  $("tokens-status").textContent = said;
  const id = next && next.dataset.tokenId;
  const again = id && $("token-list").querySelector(`[data-token-id="${CSS.escape(id)}"] .token-revoke`);
  (again || $("token-name")).focus();
}

function nameError(text) {
  const input = $("token-name");
  $("token-name-error").textContent = text;
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

$("token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("token-name");
  const name = input.value.trim();
  if (!name || [...name].length > 64) {
    nameError(NAME_ERRORS.invalid_name);
    input.focus();
    return;
  }
  try {
    const data = await api("POST", "/api/me/tokens", { name });
    nameError("");
    input.value = "";
    $("token-secret").textContent = data.secret;
    $("token-copy-status").textContent = "";
    $("token-created").hidden = false;
    await loadTokens();
    $("token-copy").focus();
  } catch (err) {
    nameError(NAME_ERRORS[err.code] || err.message);
    input.focus();
  }
});

$("token-name").addEventListener("input", () => nameError(""));

$("token-copy").addEventListener("click", async () => {
  const secret = $("token-secret").textContent;
  const status = $("token-copy-status");
  try {
    await navigator.clipboard.writeText(secret);
    status.textContent = "Copied. Keep it somewhere safe.";
  } catch {
    // No clipboard (permissions, plain http): select it so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents($("token-secret"));
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    status.textContent = "Selected: press Ctrl+C (⌘C) to copy it.";
  }
});

// Closing forgets the secret on the page: it is shown this once.
dialog.addEventListener("close", () => {
  $("token-secret").textContent = "";
  $("token-created").hidden = true;
  nameError("");
});

$("tokens-open").addEventListener("click", (e) => {
  openDialog(dialog, e.currentTarget);
  $("token-name").focus();
  loadTokens();
});
