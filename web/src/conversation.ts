import type { Message } from "./gen/switchboard/conversation/v1/conversation_service_pb.js";
import { ReadState } from "./gen/switchboard/notification/v1/notification_service_pb.js";
import { errorText } from "./api.js";
import type { Context, View } from "./app.js";
import { avatar, h, onVisible, timeEl } from "./dom.js";
import { Pager } from "./keyed.js";
import { oldestFirst } from "./order.js";

/** The category conversation-svc sends a notification under for each message. */
export const MESSAGE_CATEGORY = "conversation.message";

/** The conversation a message notification's link (`/conversations/<id>`) names. */
export function conversationOfLink(link: string): string | null {
  const match = /^\/conversations\/([^/?#]+)$/.exec(link);
  return match?.[1] ? decodeURIComponent(match[1]) : null;
}

/**
 * A key for each message typed: kept while that text is being retried, so a send whose
 * answer was lost is not stored twice; a different text gets a new key.
 */
export class Draft {
  private key = "";
  private text = "";

  constructor(private readonly newKey: () => string = () => crypto.randomUUID()) {}

  keyFor(text: string): string {
    if (text !== this.text || !this.key) {
      this.text = text;
      this.key = this.newKey();
    }
    return this.key;
  }

  /** The message was stored: the next one gets a new key. */
  sent(): void {
    this.key = "";
    this.text = "";
  }
}

/**
 * One conversation: messages oldest at the top, older pages loaded when scrolled to the
 * top (the position is kept), mine on the right, and a send box where Enter sends and
 * Shift+Enter breaks the line. Opening it marks the conversation read, and the message
 * notifications for it too, so the inbox and the badge agree.
 */
export function renderConversation(ctx: Context, id: string, onRead: () => void): View {
  const pager = new Pager<Message>(
    async (pageToken) => {
      const response = await ctx.api.conversations.listMessages({ conversationId: id, pageToken, pageSize: 30 });
      return { items: response.messages, nextPageToken: response.nextPageToken };
    },
    (m) => m.id,
    oldestFirst,
  );
  const title = h("h2", { id: "conversation-title" }, "…");
  const who = h("div", { class: "who" }, title);
  const top = h("div", { class: "sentinel", "aria-hidden": "true" });
  const list = h("ol", { class: "messages", "aria-label": "Messages", "aria-live": "polite", "aria-busy": "true" });
  const scroller = h("div", { class: "message-scroller", tabindex: "0", "aria-labelledby": "conversation-title" }, top, list);
  const error = h("p", { class: "error", role: "alert" });
  const box = h("textarea", {
    id: "message",
    name: "message",
    rows: 2,
    placeholder: "Write a message",
    "aria-label": "Message",
    "aria-describedby": "send-help",
  });
  const sendButton = h("button", { type: "submit", class: "primary" }, "Send");
  const form = h(
    "form",
    { class: "send" },
    box,
    sendButton,
    h("p", { id: "send-help", class: "visually-hidden" }, "Enter sends, Shift+Enter starts a new line."),
  );
  const el = h(
    "section",
    { class: "conversation-view", "aria-labelledby": "conversation-title" },
    h("header", {}, h("a", { class: "back", href: "/conversations" }, "‹ Messages"), who),
    scroller,
    error,
    form,
  );

  let disposed = false;
  const nearBottom = (): boolean => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const render = (anchor: "bottom" | "keep" | "auto"): void => {
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const stick = anchor === "bottom" || (anchor === "auto" && nearBottom());
    list.replaceChildren(
      ...pager.list.items.map((m) =>
        h(
          "li",
          { class: `message${m.mine ? " mine" : " theirs"}`, "data-id": m.id },
          h("span", { class: "visually-hidden" }, m.mine ? "You: " : `${title.textContent}: `),
          h("p", { class: "text" }, m.content),
          timeEl(m.createdAt),
        ),
      ),
    );
    list.setAttribute("aria-busy", pager.loading ? "true" : "false");
    top.hidden = pager.done;
    if (stick) scroller.scrollTop = scroller.scrollHeight;
    else if (anchor === "keep") scroller.scrollTop = scroller.scrollHeight - fromBottom;
  };

  /** Marks the conversation read and its message notifications: `known` when the stream
   * named them, else the unread ones found by listing (on opening, on coming back). */
  const markRead = async (known?: string[]): Promise<void> => {
    if (document.visibilityState !== "visible") return;
    try {
      await ctx.api.conversations.markRead({ conversationId: id });
      const ids = known ?? (await unreadNotifications());
      if (ids.length > 0) await ctx.api.notifications.markRead({ ids });
      onRead();
    } catch {
      // Read state is caught up the next time the conversation is opened.
    }
  };

  const unreadNotifications = async (): Promise<string[]> => {
    const link = `/conversations/${id}`;
    const ids: string[] = [];
    let pageToken = "";
    do {
      const page = await ctx.api.notifications.list({ state: ReadState.UNREAD, category: MESSAGE_CATEGORY, pageSize: 100, pageToken });
      ids.push(...page.notifications.filter((n) => n.link === link).map((n) => n.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    return ids;
  };

  let first = true;
  const loadOlder = (): void => {
    if (pager.done || pager.loading) return;
    const loading = pager.loadMore();
    loading
      .then(() => {
        render(first ? "bottom" : "keep");
        first = false;
      })
      .catch((err: unknown) => {
        error.textContent = errorText(err);
      });
  };

  /** The newest page again: messages that arrived since (the stream said so, naming the
   * notification in `notificationId`). */
  const catchUp = async (notificationId?: string): Promise<void> => {
    try {
      const response = await ctx.api.conversations.listMessages({ conversationId: id, pageSize: 30 });
      if (disposed) return;
      pager.list.upsert(...response.messages);
      render("auto");
      await markRead(notificationId === undefined ? undefined : [notificationId]);
    } catch (err) {
      error.textContent = errorText(err);
    }
  };

  const draft = new Draft();
  let sending = false;
  const send = async (): Promise<void> => {
    const content = box.value;
    if (sending || content.trim() === "") return;
    sending = true;
    sendButton.disabled = true;
    error.textContent = "";
    try {
      const response = await ctx.api.conversations.sendMessage({ conversationId: id, content, idempotencyKey: draft.keyFor(content) });
      draft.sent();
      if (box.value === content) box.value = "";
      if (response.message) pager.list.upsert(response.message);
      render("bottom");
      onRead();
    } catch (err) {
      error.textContent = `Not sent: ${errorText(err)} (press Enter to try again)`;
    } finally {
      sending = false;
      sendButton.disabled = false;
      box.focus();
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void send();
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void send();
    }
  });

  ctx.api.conversations
    .get({ id })
    .then((response) => {
      const other = response.conversation?.otherParticipant;
      const name = other?.username || other?.id || "Conversation";
      title.textContent = name;
      who.prepend(avatar(name, other?.avatarUrl ?? ""));
    })
    .catch((err: unknown) => {
      title.textContent = "Conversation";
      error.textContent = errorText(err);
    });

  const stopListening = ctx.listen((event) => {
    if (event.event.case === "notification" && event.event.value.category === MESSAGE_CATEGORY && conversationOfLink(event.event.value.link) === id) void catchUp(event.event.value.id);
  });
  const stopResumed = ctx.onResumed(() => void catchUp());
  const onVisibility = (): void => void markRead();
  document.addEventListener("visibilitychange", onVisibility);
  let stopObserving = (): void => undefined;
  const firstPage = pager.loadMore();
  firstPage
    .then(() => {
      render("bottom");
      first = false;
      stopObserving = onVisible(top, loadOlder);
      box.focus();
    })
    .catch((err: unknown) => {
      error.textContent = errorText(err);
    });
  void markRead();

  return {
    el,
    dispose: () => {
      disposed = true;
      stopListening();
      stopResumed();
      stopObserving();
      document.removeEventListener("visibilitychange", onVisibility);
    },
  };
}
