import type { Counts, Preferences, SubscribeResponse } from "./gen/switchboard/notification/v1/notification_service_pb.js";
import { createApi, type Api } from "./api.js";
import { h } from "./dom.js";
import { LiveStream, type LiveStatus } from "./live.js";
import { loadSession, signIn, signOut, type Session } from "./session.js";
import { renderInbox } from "./inbox.js";
import { renderPreferences } from "./preferences.js";
import { renderMessenger } from "./messenger.js";

/** What every view gets: the API, who is signed in, the live stream's events and the
 * inbox counts it last sent. */
export interface Context {
  readonly api: Api;
  readonly session: Session;
  /** The last `counts` event (null until the stream is live). */
  counts(): Counts | null;
  /** The last preferences known (from a `preferences` event or a page that loaded them). */
  preferences(): Preferences | null;
  setPreferences(preferences: Preferences): void;
  /** Categories met so far (counts, items, preferences), for tabs and the preferences page. */
  categories(): string[];
  noteCategory(category: string): void;
  /** Every stream event, in order; returns the unsubscribe. */
  listen(listener: (event: SubscribeResponse) => void): () => void;
  /** Called when the stream is live again after a drop (state changes made meanwhile are
   * not replayed: views re-read). */
  onResumed(listener: () => void): () => void;
  navigate(path: string): void;
}

/** A page: its element and what to undo when it is left. */
export interface View {
  el: HTMLElement;
  dispose(): void;
}

/** Starts the app in `root`: the sign-in prompt without a session, else the shell. */
export function start(root: HTMLElement): void {
  const session = loadSession(window.location, window.history, window.sessionStorage);
  if (!session) {
    root.replaceChildren(signInPrompt(root, "Sign in to see your inbox."));
    return;
  }
  new Shell(root, session).mount();
}

function signInPrompt(root: HTMLElement, reason: string): HTMLElement {
  const error = h("p", { class: "field-error", id: "token-error", role: "alert" });
  const input = h("textarea", {
    id: "token",
    name: "token",
    rows: 4,
    required: true,
    "aria-describedby": "token-help token-error",
    autocomplete: "off",
    spellcheck: "false",
  });
  const form = h(
    "form",
    { class: "sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Switchboard"),
    h("p", { class: "sign-in-reason" }, reason),
    h("label", { for: "token" }, "Token"),
    input,
    h("p", { id: "token-help", class: "help" }, "For development: ", h("code", {}, "devstack token --link --user <you>"), " prints a link that signs you in."),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const session = signIn(window.sessionStorage, input.value);
    if (!session) {
      error.textContent = "That is not a token (a JWT has three parts separated by dots).";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    new Shell(root, session).mount();
  });
  queueMicrotask(() => input.focus());
  return h("main", { class: "sign-in-page" }, form);
}

class Shell implements Context {
  readonly api: Api;
  private lastCounts: Counts | null = null;
  private prefs: Preferences | null = null;
  private readonly known = new Set<string>();
  private readonly listeners = new Set<(event: SubscribeResponse) => void>();
  private readonly resumedListeners = new Set<() => void>();
  private readonly live: LiveStream;
  private view: View | null = null;
  private signedOut = false;
  private readonly main = h("main", { id: "main", tabindex: "-1" });
  private readonly badge = h("span", { class: "badge", "aria-hidden": "true" });
  private readonly badgeLabel = h("span", { class: "visually-hidden" });
  private readonly messagesBadge = h("span", { class: "badge", "aria-hidden": "true" });
  private readonly messagesLabel = h("span", { class: "visually-hidden" });
  private readonly status = h("span", { class: "live-status", role: "status", "aria-live": "polite" });

  constructor(
    private readonly root: HTMLElement,
    readonly session: Session,
  ) {
    this.api = createApi(session.token, () => this.expired());
    this.live = new LiveStream({
      open: (resumeAfter, signal) => this.api.notifications.subscribe({ resumeAfter }, { signal }),
      onEvent: (event) => this.dispatch(event),
      onStatus: (status) => this.showStatus(status),
      onResumed: () => this.resumedListeners.forEach((listener) => listener()),
    });
  }

  mount(): void {
    const nav = h(
      "nav",
      { "aria-label": "Main" },
      h("a", { href: "/", "data-route": "inbox" }, "Inbox", this.badge, this.badgeLabel),
      h("a", { href: "/conversations", "data-route": "messages" }, "Messages", this.messagesBadge, this.messagesLabel),
      h("a", { href: "/preferences", "data-route": "preferences" }, "Preferences"),
    );
    const header = h(
      "header",
      { class: "top" },
      h("a", { class: "skip", href: "#main" }, "Skip to content"),
      h("span", { class: "brand" }, "Switchboard"),
      nav,
      this.status,
      h("span", { class: "who", title: this.session.userId }, this.session.username),
      h("button", { type: "button", class: "link", onclick: () => this.expired() }, "Sign out"),
    );
    this.root.replaceChildren(header, this.main);
    this.root.addEventListener("click", (event) => this.followLink(event));
    window.addEventListener("popstate", () => this.route());
    this.showCounts();
    this.route();
    void this.live.run();
  }

  counts(): Counts | null {
    return this.lastCounts;
  }

  preferences(): Preferences | null {
    return this.prefs;
  }

  setPreferences(preferences: Preferences): void {
    this.prefs = preferences;
    for (const entry of preferences.categories) this.noteCategory(entry.category);
  }

  categories(): string[] {
    return [...this.known].sort();
  }

  noteCategory(category: string): void {
    if (category) this.known.add(category);
  }

  listen(listener: (event: SubscribeResponse) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onResumed(listener: () => void): () => void {
    this.resumedListeners.add(listener);
    return () => this.resumedListeners.delete(listener);
  }

  navigate(path: string): void {
    if (path !== window.location.pathname + window.location.search) window.history.pushState(null, "", path);
    this.route();
  }

  private dispatch(event: SubscribeResponse): void {
    const e = event.event;
    if (e.case === "counts") {
      this.lastCounts = e.value;
      for (const category of Object.keys(e.value.unreadByCategory)) this.noteCategory(category);
      this.showCounts();
    } else if (e.case === "preferences") {
      this.setPreferences(e.value);
    } else if (e.case === "notification") {
      this.noteCategory(e.value.category);
    }
    for (const listener of this.listeners) listener(event);
  }

  private showCounts(): void {
    const unseen = Number(this.lastCounts?.unseen ?? 0n);
    this.badge.textContent = unseen > 0 ? String(unseen) : "";
    this.badge.hidden = unseen === 0;
    this.badgeLabel.textContent = unseen > 0 ? ` (${unseen} new)` : "";
    const messages = Number(this.lastCounts?.unreadByCategory["conversation.message"] ?? 0n);
    this.messagesBadge.textContent = messages > 0 ? String(messages) : "";
    this.messagesBadge.hidden = messages === 0;
    this.messagesLabel.textContent = messages > 0 ? ` (${messages} unread)` : "";
    document.title = unseen > 0 ? `(${unseen}) Switchboard` : "Switchboard";
  }

  private showStatus(status: LiveStatus): void {
    const text: Record<LiveStatus, string> = {
      connecting: "Connecting…",
      live: "Live",
      reconnecting: "Reconnecting…",
      "signed-out": "Signed out",
      stopped: "Offline",
    };
    this.status.textContent = text[status];
    this.status.dataset.state = status;
    if (status === "signed-out") this.expired();
  }

  private route(): void {
    if (this.signedOut) return;
    const path = window.location.pathname;
    this.view?.dispose();
    let section: string;
    let view: View;
    if (path === "/preferences") {
      section = "preferences";
      view = renderPreferences(this);
    } else if (path === "/conversations" || path.startsWith("/conversations/")) {
      section = "messages";
      const id = decodeURIComponent(path.slice("/conversations/".length));
      view = renderMessenger(this, path === "/conversations" ? "" : id);
    } else {
      section = "inbox";
      view = renderInbox(this, new URLSearchParams(window.location.search));
    }
    for (const link of this.root.querySelectorAll<HTMLAnchorElement>("nav a")) {
      if (link.dataset.route === section) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    this.view = view;
    this.main.replaceChildren(view.el);
  }

  /** Same-origin links inside the app change the route without a reload. */
  private followLink(event: MouseEvent): void {
    if (this.signedOut || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = (event.target as Element | null)?.closest?.("a");
    if (!link || link.target || link.hasAttribute("download")) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || url.hash) return;
    event.preventDefault();
    this.navigate(url.pathname + url.search);
  }

  /** The token was refused (expired, revoked) or the person signed out: stop everything
   * and ask for a token. */
  private expired(): void {
    if (this.signedOut) return;
    this.signedOut = true;
    this.live.stop();
    this.view?.dispose();
    signOut(window.sessionStorage);
    this.root.replaceChildren(signInPrompt(this.root, "Your session has ended. Sign in again to continue."));
  }
}
