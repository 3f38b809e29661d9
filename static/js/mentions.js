// `@` completion in the message box and the edit box: the usernames of the room's members,
// of who is in it now and of who wrote what is loaded, in a listbox by the box (the
// combobox pattern on a textarea: the box keeps the focus and names the chosen option with
// `aria-activedescendant`; arrow keys choose, Enter or Tab picks, Escape closes; Enter after
// a name typed out in full sends, as it would without the list).

import { $ } from "./dom.js";
import { me, state } from "./state.js";

/** Most names the list shows at once. */
const MAX_SHOWN = 8;
/** The `@name` being typed right before the caret, as the server reads a mention. */
const TYPING = /(?:^|[^A-Za-z0-9_])@([A-Za-z0-9_]{0,32})$/;

let seq = 0;

/**
 * The names `@prefix` may complete to in the room on screen, present people first, then by
 * name; never the reader's own.
 */
export function candidates(prefix) {
  const room = state.current ? state.rooms.get(state.current) : null;
  if (!room) return [];
  const here = new Map(); // lower-case name -> {name, here}
  const note = (id, name, present) => {
    if (!name || id === me.id) return;
    const key = name.toLowerCase();
    const known = here.get(key);
    if (!known) here.set(key, { name, present });
    else if (present) known.present = true;
  };
  for (const [id, name] of room.presence) note(id, name, true);
  if (state.members && state.members.room === room.name) {
    for (const m of state.members.members) note(m.id, m.username, false);
  }
  for (const msg of room.messages.values()) note(msg.user.id, msg.user.username, false);
  const want = prefix.toLowerCase();
  return [...here.values()]
    .filter((c) => c.name.toLowerCase().startsWith(want))
    .sort((a, b) => Number(b.present) - Number(a.present) || a.name.localeCompare(b.name))
    .slice(0, MAX_SHOWN);
}

/** Completion for one textarea and its listbox. */
export class Autocomplete {
  /**
   * `input` the textarea, `list` an empty <ul> for the options; `onChange` runs after a name
   * was put in (as if typed).
   */
  constructor(input, list, onChange = () => {}) {
    this.input = input;
    this.list = list;
    this.onChange = onChange;
    this.shown = [];
    this.active = 0;
    this.prefix = "";
    this.id = `mention-${++seq}`;
    if (!list.id) list.id = `${this.id}-list`;
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Usernames");
    list.hidden = true;
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", list.id);
    input.addEventListener("input", () => this.update());
    input.addEventListener("click", () => this.update());
    input.addEventListener("blur", () => this.close());
    // A click picks without taking the focus from the box.
    list.addEventListener("mousedown", (e) => e.preventDefault());
    list.addEventListener("click", (e) => {
      const li = e.target instanceof Element ? e.target.closest("li[data-name]") : null;
      if (li) this.pick(li.dataset.name);
    });
  }

  isOpen() {
    return !this.list.hidden;
  }

  /** The `@name` before the caret: `{start, prefix}`, or null. */
  token() {
    const { input } = this;
    if (input.selectionStart !== input.selectionEnd) return null;
    const before = input.value.slice(0, input.selectionStart);
    const m = TYPING.exec(before);
    return m ? { start: before.length - m[1].length - 1, prefix: m[1] } : null;
  }

  /** Opens, narrows or closes the list after the text or the caret moved. */
  update() {
    const t = this.token();
    const shown = t ? candidates(t.prefix) : [];
    if (!shown.length) {
      this.close();
      return;
    }
    const was = this.shown[this.active] && this.shown[this.active].name;
    const opened = !this.isOpen();
    this.shown = shown;
    this.prefix = t.prefix;
    const keep = shown.findIndex((c) => c.name === was);
    this.active = keep >= 0 ? keep : 0;
    this.render();
    if (opened || this.announced !== shown.length) {
      this.announced = shown.length;
      const n = shown.length;
      $("mention-status").textContent =
        `${n} name${n === 1 ? "" : "s"}: up and down to choose, Enter or Tab to insert, Escape to close.`;
    }
  }

  render() {
    const items = this.shown.map((c, i) => {
      const li = document.createElement("li");
      li.id = `${this.id}-opt-${i}`;
      li.className = "mention-option";
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === this.active));
      li.dataset.name = c.name;
      const name = document.createElement("span");
      name.className = "mention-name";
      name.textContent = c.name;
      li.append(name);
      if (c.present) {
        const here = document.createElement("span");
        here.className = "mention-here";
        here.textContent = " here now";
        li.append(here);
      }
      return li;
    });
    this.list.replaceChildren(...items);
    this.list.hidden = false;
    this.input.setAttribute("aria-activedescendant", `${this.id}-opt-${this.active}`);
    const active = this.list.children[this.active];
    if (active) active.scrollIntoView({ block: "nearest" });
  }

  close() {
    if (this.list.hidden) return;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.shown = [];
    this.announced = 0;
    this.input.removeAttribute("aria-activedescendant");
  }

  /** Puts `@name ` in place of the `@prefix` being typed. */
  pick(name) {
    const t = this.token();
    this.close();
    if (!t) return;
    const { input } = this;
    const after = input.value.slice(input.selectionEnd);
    const insert = `@${name}${after.startsWith(" ") ? "" : " "}`;
    input.value = input.value.slice(0, t.start) + insert + after;
    const caret = t.start + insert.length + (after.startsWith(" ") ? 1 : 0);
    input.setSelectionRange(caret, caret);
    $("mention-status").textContent = `${name} inserted.`;
    this.onChange();
  }

  /** Whether the name being typed is the chosen one in full. */
  complete() {
    const chosen = this.shown[this.active];
    return !!chosen && chosen.name.toLowerCase() === this.prefix.toLowerCase();
  }

  /** Handles the list's keys while it is open; true when the key was its. */
  onKey(e) {
    if (!this.isOpen() || e.isComposing) return false;
    const n = this.shown.length;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.render();
    } else if (e.key === "Enter" && !e.shiftKey && this.complete()) {
      // The name is typed out already: Enter does what it does without the list.
      this.close();
      return false;
    } else if ((e.key === "Enter" && !e.shiftKey) || (e.key === "Tab" && !e.shiftKey)) {
      this.pick(this.shown[this.active].name);
    } else if (e.key === "Escape") {
      this.close();
    } else {
      return false;
    }
    e.preventDefault();
    e.stopPropagation();
    return true;
  }
}
