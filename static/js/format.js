// Light formatting of message bodies, from a whitelist, straight into DOM nodes: fenced code
// blocks, `code`, **bold**, _italic_, http(s) links and the @mentions the server found. User
// text only ever becomes text nodes (textContent); no HTML is parsed, so nothing typed can
// make an element of its own.

/** Inline pieces, leftmost first: `code`, a link, **bold**, _italic_ (not inside words). */
const INLINE =
  /(`[^`\n]+`)|(\bhttps?:\/\/[^\s<>"]+)|(\*\*(?=\S)[^\n]*?\S\*\*)|((?<![\p{L}\p{N}_])_(?=[^\s_])[^\n]*?[^\s_]_(?![\p{L}\p{N}_]))/iu;
/** A fence line: three backticks and an optional language word. */
const FENCE = /^```[\w+#.-]*\s*$/;
/** Characters that may start formatting; a body without any is one text node. */
const MAYBE = /[`*_]|https?:\/\//i;
/** Nesting depth for bold and italic inside each other. */
const MAX_DEPTH = 3;
/**
 * `@name` as the server reads a mention: the `@` at the start or after a character that is
 * not an ASCII letter, digit or `_`, and the longest run of those after it.
 */
const MENTION = /(?<![A-Za-z0-9_])@([A-Za-z0-9_]+)/g;

/**
 * Appends `body`, formatted, to `parent`. Plain text (most messages) becomes one text node.
 * `mentions` maps the lower-case names the server found mentioned to whether the name is
 * the reader's own: those `@name`s are marked (`.mention`, `.mention-me`).
 */
export function renderBody(parent, body, mentions = null) {
  const marks = mentions && mentions.size && body.includes("@") ? mentions : null;
  if (!marks && !MAYBE.test(body)) {
    parent.textContent = body;
    return;
  }
  const lines = body.split("\n");
  let text = [];
  const flushText = () => {
    if (text.length) inline(parent, text.join("\n"), 0, marks);
    text = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const close = FENCE.test(lines[i]) ? findClose(lines, i + 1) : -1;
    if (close < 0) {
      text.push(lines[i]);
      continue;
    }
    flushText();
    const pre = document.createElement("pre");
    const code = document.createElement("code");
    code.textContent = lines.slice(i + 1, close).join("\n");
    pre.append(code);
    parent.append(pre);
    i = close;
  }
  flushText();
}

/** The index of the line closing a fence opened before `from`, or -1 when none does. */
function findClose(lines, from) {
  for (let j = from; j < lines.length; j++) if (/^```\s*$/.test(lines[j])) return j;
  return -1;
}

/** Appends `text` with its inline formatting to `parent`. */
function inline(parent, text, depth, marks) {
  let rest = text;
  for (;;) {
    const m = depth < MAX_DEPTH ? INLINE.exec(rest) : null;
    if (!m) {
      if (rest) plain(parent, rest, marks);
      return;
    }
    if (m.index > 0) plain(parent, rest.slice(0, m.index), marks);
    let used = m[0].length;
    if (m[1]) {
      const code = document.createElement("code");
      code.textContent = m[1].slice(1, -1);
      parent.append(code);
    } else if (m[2]) {
      const { href, length } = link(m[2]);
      used = length;
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.textContent = m[2].slice(0, length);
        a.rel = "noopener noreferrer";
        a.target = "_blank";
        parent.append(a);
      } else {
        parent.append(m[2].slice(0, length));
      }
    } else {
      const el = document.createElement(m[3] ? "strong" : "em");
      const inner = m[3] ? m[3].slice(2, -2) : m[4].slice(1, -1);
      inline(el, inner, depth + 1, marks);
      parent.append(el);
    }
    rest = rest.slice(m.index + used);
  }
}

/** Appends plain `text`, each mention in it (see `renderBody`) in a <span> of its own. */
function plain(parent, text, marks) {
  if (!marks || !text.includes("@")) {
    parent.append(text);
    return;
  }
  let last = 0;
  for (const m of text.matchAll(MENTION)) {
    const mine = marks.get(m[1].toLowerCase());
    if (mine === undefined) continue;
    if (m.index > last) parent.append(text.slice(last, m.index));
    const span = document.createElement("span");
    span.className = mine ? "mention mention-me" : "mention";
    span.textContent = m[0];
    parent.append(span);
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

/**
 * The link a matched URL makes: trailing punctuation is the sentence's, not the URL's (a
 * closing parenthesis stays when the URL opened one). `href` is null unless it parses as an
 * http(s) URL.
 */
function link(raw) {
  let end = raw.length;
  for (;;) {
    const c = raw[end - 1];
    if (/[.,;:!?'*_]/.test(c)) end--;
    else if (c === ")" && count(raw.slice(0, end), "(") < count(raw.slice(0, end), ")")) end--;
    else break;
  }
  const text = raw.slice(0, end);
  try {
    const url = new URL(text);
    if (url.protocol === "http:" || url.protocol === "https:") return { href: url.href, length: end };
  } catch {
    /* not a URL after all */
  }
  return { href: null, length: raw.length };
}

function count(s, ch) {
  let n = 0;
  for (const c of s) if (c === ch) n++;
  return n;
}

/** `body` as its formatting reads, markers taken out (for one-line quotes). */
export function plainText(body) {
  if (!MAYBE.test(body)) return body;
  const el = document.createElement("div");
  renderBody(el, body);
  return el.textContent;
}
