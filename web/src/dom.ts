import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Pager } from "./keyed.js";

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>;

/** Builds an element: attributes (`on*` entries become listeners; `false`/null are left
 * out) and children. Text goes in as text nodes, never as HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/** A `<time>` in the browser's locale and time zone: the time alone for today. */
export function timeEl(ts: Timestamp | undefined, now = new Date()): HTMLTimeElement | null {
  if (!ts) return null;
  const date = timestampDate(ts);
  const sameDay = date.toDateString() === now.toDateString();
  return h("time", { datetime: date.toISOString(), title: dateTime.format(date) }, sameDay ? timeOnly.format(date) : dateTime.format(date));
}

export function formatDateTime(date: Date): string {
  return dateTime.format(date);
}

/** A round picture, or the initials when there is none (or it fails to load). */
export function avatar(name: string, url: string): HTMLElement {
  const initials = h("span", { class: "avatar", "aria-hidden": "true" }, initialsOf(name));
  if (!url) return initials;
  const img = h("img", { class: "avatar", src: url, alt: "", width: 40, height: 40, loading: "lazy", referrerpolicy: "no-referrer" });
  img.addEventListener("error", () => img.replaceWith(initials));
  return img;
}

export function initialsOf(name: string): string {
  const words = name.split(/[\s._-]+/).filter(Boolean);
  const letters = words.length > 1 ? (words[0]?.[0] ?? "") + (words[1]?.[0] ?? "") : name.slice(0, 2);
  return letters.toUpperCase() || "?";
}

/** Calls `load` whenever `sentinel` scrolls into view (infinite scroll). */
export function onVisible(sentinel: Element, load: () => void): () => void {
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) load();
  });
  observer.observe(sentinel);
  return () => observer.disconnect();
}

/** Draws a pager's items into `list`: busy while a page loads, `empty` once the last page
 * came back with nothing, the scroll sentinel only while pages remain. */
export function showPages<T>(pager: Pager<T>, list: HTMLElement, empty: HTMLElement, sentinel: HTMLElement, item: (value: T) => HTMLElement): void {
  list.replaceChildren(...pager.list.items.map(item));
  list.setAttribute("aria-busy", pager.loading ? "true" : "false");
  empty.hidden = pager.list.size > 0 || !pager.done;
  sentinel.hidden = pager.done;
}
