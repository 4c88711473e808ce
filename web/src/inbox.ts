import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  ArchiveState,
  ReadState,
  StateChange,
  type Notification,
  type SubscribeResponse,
} from "./gen/switchboard/notification/v1/notification_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListRequestSchema } from "./gen/switchboard/notification/v1/notification_service_pb.js";
import { errorText } from "./api.js";
import type { Context, View } from "./app.js";
import { h, onVisible, showPages, timeEl } from "./dom.js";
import { Pager } from "./keyed.js";
import { newestFirst } from "./order.js";
import { snoozeChoices } from "./snooze.js";

export type Tab = "unread" | "read" | "all" | "archived";
const TABS: { tab: Tab; label: string }[] = [
  { tab: "unread", label: "Unread" },
  { tab: "read", label: "Read" },
  { tab: "all", label: "All" },
  { tab: "archived", label: "Archived" },
];
const PAGE_SIZE = 20;

/** The List request for one tab and category. */
export function listRequest(tab: Tab, category: string, pageToken: string): MessageInitShape<typeof ListRequestSchema> {
  return {
    category,
    pageToken,
    pageSize: PAGE_SIZE,
    state: tab === "unread" ? ReadState.UNREAD : tab === "read" ? ReadState.READ : ReadState.UNSPECIFIED,
    archiveState: tab === "archived" ? ArchiveState.ARCHIVED : ArchiveState.UNSPECIFIED,
  };
}

/** Whether a notification belongs in a tab (snoozed ones are in none until they wake). */
export function belongs(n: Notification, tab: Tab, category: string): boolean {
  if (category && n.category !== category) return false;
  if (n.snoozedUntil) return false;
  if (tab === "archived") return n.archived;
  if (n.archived) return false;
  if (tab === "unread") return !n.read;
  if (tab === "read") return n.read;
  return true;
}

/**
 * The message center: categories on the left with unread counts, Unread / Read / All /
 * Archived on the right over a list that loads pages as it scrolls. Counts are the stream's
 * `counts` events; the list follows the stream's notification, read and state events, and
 * re-reads itself when a change cannot be applied to what is loaded.
 */
export function renderInbox(ctx: Context, query: URLSearchParams): View {
  const category = query.get("category") ?? "";
  const tabParam = query.get("tab");
  const tab: Tab = TABS.some((t) => t.tab === tabParam) ? (tabParam as Tab) : "unread";
  const href = (t: Tab, c: string): string => {
    const q = new URLSearchParams();
    if (c) q.set("category", c);
    if (t !== "unread") q.set("tab", t);
    const s = q.toString();
    return s ? `/?${s}` : "/";
  };

  const pager = new Pager<Notification>(
    async (pageToken) => {
      const response = await ctx.api.notifications.list(listRequest(tab, category, pageToken));
      return { items: response.notifications, nextPageToken: response.nextPageToken };
    },
    (n) => n.id,
    newestFirst,
  );

  const categoryNav = h("ul", { class: "categories" });
  const tabList = h("div", { class: "tabs", role: "tablist", "aria-label": "Which notifications" });
  const list = h("ul", { class: "notifications", "aria-label": "Notifications", "aria-busy": "true" });
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  const empty = h("p", { class: "empty", hidden: true }, "Nothing here.");
  const error = h("p", { class: "error", role: "alert" });
  const markAll = h("button", { type: "button", class: "secondary", disabled: tab === "archived" }, "Mark all read");
  const archiveAll = h("button", { type: "button", class: "secondary", disabled: tab === "archived" || tab === "unread" }, "Archive all read");
  const heading = category || "All categories";

  const el = h(
    "div",
    { class: "inbox" },
    h("aside", { class: "category-pane" }, h("h2", { class: "visually-hidden" }, "Categories"), h("nav", { "aria-label": "Categories" }, categoryNav)),
    h(
      "section",
      { class: "list-pane", "aria-labelledby": "inbox-title" },
      h("div", { class: "list-head" }, h("h1", { id: "inbox-title" }, heading), h("div", { class: "bulk" }, markAll, archiveAll)),
      tabList,
      error,
      h("div", { role: "tabpanel", "aria-labelledby": `tab-${tab}` }, list, empty, sentinel),
    ),
  );

  const renderCategories = (): void => {
    const counts = ctx.counts();
    const names = new Set(ctx.categories());
    if (category) names.add(category);
    const entry = (name: string, label: string, count: bigint | undefined): HTMLElement => {
      const n = Number(count ?? 0n);
      return h(
        "li",
        {},
        h(
          "a",
          { href: href(tab, name), "aria-current": name === category ? "page" : null, "data-category": name },
          h("span", { class: "name" }, label),
          h("span", { class: "count", "aria-label": `${n} unread` }, n > 0 ? String(n) : ""),
        ),
      );
    };
    categoryNav.replaceChildren(
      entry("", "All", counts?.unread),
      ...[...names].sort().map((name) => entry(name, name, counts?.unreadByCategory[name])),
    );
  };

  const renderTabs = (): void => {
    const counts = ctx.counts();
    const unread = category ? counts?.unreadByCategory[category] : counts?.unread;
    tabList.replaceChildren(
      ...TABS.map((t) =>
        h(
          "a",
          {
            href: href(t.tab, category),
            role: "tab",
            id: `tab-${t.tab}`,
            "aria-selected": t.tab === tab ? "true" : "false",
            "data-tab": t.tab,
          },
          t.label,
          // Only unread has a count the API keeps (Counts); the others show none rather than a guess.
          t.tab === "unread" ? h("span", { class: "count", "data-count": "unread" }, String(Number(unread ?? 0n))) : null,
        ),
      ),
    );
  };

  const renderList = (): void => showPages(pager, list, empty, sentinel, item);

  const item = (n: Notification): HTMLElement => {
    const open = h(
      "a",
      { class: "open", href: n.link || "#", "aria-describedby": `meta-${n.id}` },
      h("span", { class: "unread-dot", "aria-hidden": "true" }),
      h("span", { class: "content" }, n.content),
    );
    open.addEventListener("click", (event) => {
      event.preventDefault();
      void openItem(n);
    });
    const actions = h("div", { class: "actions" });
    if (n.archived) {
      actions.append(h("button", { type: "button", onclick: () => void act(() => ctx.api.notifications.unarchive({ selection: { ids: [n.id] } }), n.id) }, "Unarchive"));
    } else {
      if (n.read)
        actions.append(h("button", { type: "button", onclick: () => void act(() => ctx.api.notifications.markUnread({ selection: { ids: [n.id] } }), null) }, "Mark unread"));
      actions.append(h("button", { type: "button", onclick: () => void act(() => ctx.api.notifications.archive({ selection: { ids: [n.id] } }), n.id) }, "Archive"));
      actions.append(snoozeMenu(n));
    }
    return h(
      "li",
      { class: `notification${n.read ? " read" : " unread"}`, "data-id": n.id },
      open,
      h(
        "div",
        { class: "meta", id: `meta-${n.id}` },
        h("span", { class: "category" }, n.category),
        n.broadcast ? h("span", { class: "tag" }, "Everyone") : null,
        n.read ? null : h("span", { class: "visually-hidden" }, "Unread."),
        timeEl(n.createdAt),
      ),
      actions,
    );
  };

  const snoozeMenu = (n: Notification): HTMLElement => {
    const choices = h("div", { class: "menu", role: "group", "aria-label": "Snooze until", hidden: true });
    const toggle = h("button", { type: "button", "aria-expanded": "false", "aria-haspopup": "true" }, "Snooze");
    toggle.addEventListener("click", () => {
      const opening = choices.hidden;
      choices.replaceChildren(
        ...snoozeChoices(new Date()).map((choice) =>
          h(
            "button",
            {
              type: "button",
              onclick: () => void act(() => ctx.api.notifications.snooze({ selection: { ids: [n.id] }, until: timestampFromDate(choice.until) }), n.id),
            },
            choice.label,
          ),
        ),
      );
      choices.hidden = !opening;
      toggle.setAttribute("aria-expanded", String(opening));
      if (opening) (choices.firstElementChild as HTMLElement | null)?.focus();
    });
    choices.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        choices.hidden = true;
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
    return h("div", { class: "snooze" }, toggle, choices);
  };

  /** Runs one change; `leaving` is the item it moves out of this tab (removed at once, the
   * stream's event would do the same a moment later). */
  const act = async (call: () => Promise<unknown>, leaving: string | null): Promise<void> => {
    error.textContent = "";
    try {
      await call();
      if (leaving) {
        pager.list.remove(leaving);
        renderList();
      }
    } catch (err) {
      error.textContent = errorText(err);
    }
  };

  const openItem = async (n: Notification): Promise<void> => {
    if (!n.read) {
      try {
        await ctx.api.notifications.markRead({ ids: [n.id] });
      } catch (err) {
        error.textContent = errorText(err);
        return;
      }
    }
    if (!n.link) return;
    if (n.link.startsWith("/")) ctx.navigate(n.link);
    else if (/^https?:\/\//.test(n.link)) window.location.assign(n.link);
  };

  markAll.addEventListener("click", () => void act(() => ctx.api.notifications.markRead({ all: true, category }), null));
  archiveAll.addEventListener("click", () =>
    void act(async () => {
      await ctx.api.notifications.archive({ selection: { all: true, category, state: ReadState.READ } });
      if (tab === "read") {
        pager.list.clear();
        renderList();
      }
    }, null),
  );

  /** What was shown unseen is seen now (only while the tab is in front). */
  const seen = new Set<string>();
  const markShownSeen = (): void => {
    if (document.visibilityState !== "visible") return;
    const ids = pager.list.items.filter((n) => !n.seen && !seen.has(n.id)).map((n) => n.id);
    if (ids.length === 0) return;
    ids.forEach((id) => seen.add(id));
    ctx.api.notifications.markSeen({ selection: { ids } }).catch(() => ids.forEach((id) => seen.delete(id)));
  };

  const loadMore = (): void => {
    if (pager.done || pager.loading) return;
    error.textContent = "";
    const loading = pager.loadMore();
    renderList();
    loading
      .then(() => {
        for (const n of pager.list.items) ctx.noteCategory(n.category);
        renderList();
        renderCategories();
        markShownSeen();
      })
      .catch((err: unknown) => {
        error.textContent = errorText(err);
        renderList();
      });
  };

  let reloadTimer: ReturnType<typeof setTimeout> | undefined;
  const reload = (): void => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      pager.reset();
      loadMore();
    }, 50);
  };

  const onEvent = (event: SubscribeResponse): void => {
    const e = event.event;
    switch (e.case) {
      case "counts":
        renderCategories();
        renderTabs();
        break;
      case "notification": {
        const n = e.value;
        if (belongs(n, tab, category)) {
          pager.list.upsert(n);
          renderList();
          renderCategories();
          markShownSeen();
        }
        break;
      }
      case "read": {
        const r = e.value;
        const hit = (n: Notification): boolean => (r.all ? !r.category || n.category === r.category : r.ids.includes(n.id));
        if (tab === "unread") pager.list.remove(...pager.list.items.filter(hit).map((n) => n.id));
        // Newly read items belong in Read, but the event carries ids only: re-read the page.
        else if (tab === "read") reload();
        else pager.list.update(hit, (n) => ({ ...n, read: true }));
        renderList();
        break;
      }
      case "state": {
        const s = e.value;
        if (s.change === StateChange.SEEN && !s.all) {
          pager.list.update((n) => s.ids.includes(n.id), (n) => ({ ...n, seen: true }));
          renderList();
        } else if ((s.change === StateChange.ARCHIVED || s.change === StateChange.SNOOZED) && !s.all && tab !== "archived") {
          pager.list.remove(...s.ids);
          renderList();
        } else if (s.change !== StateChange.SEEN) {
          reload();
        }
        break;
      }
      case "preferences":
        renderCategories();
        break;
      default:
        break;
    }
  };

  renderCategories();
  renderTabs();
  renderList();
  const stopListening = ctx.listen(onEvent);
  const stopResumed = ctx.onResumed(reload);
  const stopObserving = onVisible(sentinel, loadMore);
  const onVisibility = (): void => markShownSeen();
  document.addEventListener("visibilitychange", onVisibility);
  loadMore();

  return {
    el,
    dispose: () => {
      clearTimeout(reloadTimer);
      stopListening();
      stopResumed();
      stopObserving();
      document.removeEventListener("visibilitychange", onVisibility);
      pager.reset();
    },
  };
}
