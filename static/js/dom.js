// The page's smallest helpers, used by every part that draws: finding an element, showing
// a time, redrawing a list without losing the focus. They import nothing of the app.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Hours and minutes, as the reader's clock shows them. */
export const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFmt = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

/** A timestamp as the reader's clock shows it; the date too when it is not today. */
export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date().toDateString() === d.toDateString();
  return (today ? timeFmt : dateFmt).format(d);
}

/**
 * Runs `draw`, which replaces the children of `container`; a control inside it that had
 * the focus has it again afterwards (the same kind of control for the same thing), so a
 * redraw never drops the focus to <body>.
 */
export function keepFocus(container, draw) {
  const active = document.activeElement;
  let key = null;
  if (active && active !== container && container.contains(active)) {
    // What the control is for, not its state: a role button stays itself after the change.
    const { role, ...data } = active.dataset;
    key = { cls: active.classList[0], data };
  }
  draw();
  if (!key || container.contains(document.activeElement)) return;
  const same = [...container.querySelectorAll(`.${key.cls}`)].find((el) =>
    Object.entries(key.data).every(([k, v]) => el.dataset[k] === v),
  );
  if (same) same.focus();
}
