// Message search (`GET /api/search`): the box in the top bar (shortcut `/`), the results
// with room, author, time and the matched words marked — built from `matches` as text
// nodes, never as HTML — and opening a result in its room with the history around it.

import { api } from "./api.js";
import { $, formatTime } from "./dom.js";

/** Results asked for per search. */
const LIMIT = 20;

/**
 * `body` as nodes: text, with each `[start, end)` range (code points, ascending) in a
 * <mark>.
 */
export function highlighted(body, matches) {
  const chars = [...body];
  const nodes = [];
  let at = 0;
  for (const [start, end] of matches) {
    if (start < at || end > chars.length || start >= end) continue;
    if (start > at) nodes.push(document.createTextNode(chars.slice(at, start).join("")));
    const mark = document.createElement("mark");
    mark.textContent = chars.slice(start, end).join("");
    nodes.push(mark);
    at = end;
  }
  if (at < chars.length) nodes.push(document.createTextNode(chars.slice(at).join("")));
  return nodes;
}

/** One result: a button that opens the message, `open(room, id)`. */
function resultEl(result) {
  const m = result.message;
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "search-hit";
  b.dataset.room = m.room;
  b.dataset.id = String(m.id);
  const meta = document.createElement("span");
  meta.className = "hit-meta";
  const room = document.createElement("span");
  room.className = "hit-room";
  room.textContent = `#${m.room}`;
  const author = document.createElement("span");
  author.className = "hit-author";
  author.textContent = m.user.username;
  const time = document.createElement("time");
  time.dateTime = m.sent_at;
  time.textContent = formatTime(m.sent_at);
  meta.append(room, " · ", author, " · ", time);
  const body = document.createElement("span");
  body.className = "hit-body";
  body.append(...highlighted(m.body, result.matches));
  b.append(meta, body);
  li.append(b);
  return li;
}

/** Runs the search in the box and shows its results. */
export async function runSearch() {
  const q = $("search-q").value.trim();
  const panel = $("search-results");
  const status = $("search-status");
  const list = $("search-list");
  if (!q) return;
  panel.hidden = false;
  status.textContent = "Searching…";
  list.replaceChildren();
  try {
    const data = await api("GET", `/api/search?q=${encodeURIComponent(q)}&limit=${LIMIT}`);
    list.replaceChildren(...data.results.map(resultEl));
    const n = data.results.length;
    status.textContent = n
      ? `${n}${n === LIMIT ? "+" : ""} message${n === 1 ? "" : "s"} found for “${q}”.`
      : `No message found for “${q}”.`;
  } catch (err) {
    status.textContent = err.code === "invalid_query" ? "Type a word to search for." : err.message;
  }
}

/** Closes the results. */
export function closeSearch() {
  $("search-results").hidden = true;
}
