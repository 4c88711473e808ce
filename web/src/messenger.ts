import { Code } from "@connectrpc/connect";
import type { Conversation } from "./gen/switchboard/conversation/v1/conversation_service_pb.js";
import { errorText, isCode } from "./api.js";
import type { Context, View } from "./app.js";
import { avatar, h, onVisible, showPages, timeEl } from "./dom.js";
import { Pager } from "./keyed.js";
import { mostRecentFirst } from "./order.js";
import { renderConversation, conversationOfLink, MESSAGE_CATEGORY } from "./conversation.js";

/**
 * The messenger: conversations most recent first (the other person, the last message, the
 * unread count) and, when one is open, its messages beside them (alone on a narrow
 * screen). A `conversation.message` notification on the stream refreshes that conversation
 * in the list and in the open view.
 */
export function renderMessenger(ctx: Context, openId: string): View {
  const pager = new Pager<Conversation>(
    async (pageToken) => {
      const response = await ctx.api.conversations.list({ pageToken, pageSize: 30 });
      return { items: response.conversations, nextPageToken: response.nextPageToken };
    },
    (c) => c.id,
    mostRecentFirst,
  );
  const list = h("ul", { class: "conversations", "aria-label": "Conversations", "aria-busy": "true" });
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  const empty = h("p", { class: "empty", hidden: true }, "No conversations yet.");
  const error = h("p", { class: "error", role: "alert" });

  const username = h("input", {
    id: "new-username",
    name: "username",
    autocomplete: "off",
    autocapitalize: "none",
    spellcheck: "false",
    placeholder: "username",
    "aria-describedby": "new-username-error",
  });
  const usernameError = h("p", { class: "field-error", id: "new-username-error", role: "alert" });
  const startForm = h(
    "form",
    { class: "new-conversation", "aria-label": "New conversation" },
    h("label", { for: "new-username" }, "New conversation with"),
    h("div", { class: "row" }, username, h("button", { type: "submit", class: "primary" }, "Start")),
    usernameError,
  );
  const fieldError = (text: string): void => {
    usernameError.textContent = text;
    if (text) username.setAttribute("aria-invalid", "true");
    else username.removeAttribute("aria-invalid");
  };
  startForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = username.value.trim();
    if (!name) {
      fieldError("Enter the username of the person to write to.");
      username.focus();
      return;
    }
    fieldError("");
    ctx.api.conversations
      .create({ username: name })
      .then((response) => {
        username.value = "";
        if (response.conversation) {
          pager.list.upsert(response.conversation);
          ctx.navigate(`/conversations/${encodeURIComponent(response.conversation.id)}`);
        }
      })
      .catch((err: unknown) => {
        fieldError(isCode(err, Code.NotFound) ? `There is no user named "${name}".` : errorText(err));
        username.focus();
      });
  });

  const renderList = (): void => showPages(pager, list, empty, sentinel, item);

  const item = (c: Conversation): HTMLElement => {
    const other = c.otherParticipant;
    const name = other?.username || other?.id || "someone";
    const unread = Number(c.unreadCount);
    const last = c.lastMessage;
    return h(
      "li",
      { class: `conversation${unread > 0 ? " unread" : ""}`, "data-id": c.id },
      h(
        "a",
        { href: `/conversations/${encodeURIComponent(c.id)}`, "aria-current": c.id === openId ? "page" : null },
        avatar(name, other?.avatarUrl ?? ""),
        h(
          "span",
          { class: "summary" },
          h("span", { class: "name" }, name),
          h("span", { class: "last" }, last ? `${last.mine ? "You: " : ""}${last.content}` : "No messages yet"),
        ),
        h(
          "span",
          { class: "side" },
          timeEl(last?.createdAt ?? c.createdAt),
          h("span", { class: "count", "data-count": "unread", "aria-label": `${unread} unread` }, unread > 0 ? String(unread) : ""),
        ),
      ),
    );
  };

  const loadMore = (): void => {
    if (pager.done || pager.loading) return;
    const loading = pager.loadMore();
    renderList();
    loading.then(renderList).catch((err: unknown) => {
      error.textContent = errorText(err);
      renderList();
    });
  };

  /** Re-reads one conversation (a new message, or the open view marked it read). */
  const refresh = (id: string): void => {
    ctx.api.conversations
      .get({ id })
      .then((response) => {
        if (response.conversation) pager.list.upsert(response.conversation);
        renderList();
      })
      .catch(() => undefined);
  };

  const open = openId ? renderConversation(ctx, openId, () => refresh(openId)) : null;
  const el = h(
    "div",
    { class: `messenger${open ? " has-open" : ""}` },
    h(
      "section",
      { class: "conversation-list", "aria-labelledby": "messages-title" },
      h("h1", { id: "messages-title" }, "Messages"),
      startForm,
      error,
      list,
      empty,
      sentinel,
    ),
    open ? open.el : h("section", { class: "conversation-placeholder", "aria-hidden": "true" }, h("p", {}, "Pick a conversation, or start one.")),
  );

  const stopListening = ctx.listen((event) => {
    if (event.event.case !== "notification" || event.event.value.category !== MESSAGE_CATEGORY) return;
    const id = conversationOfLink(event.event.value.link);
    if (id && id !== openId) refresh(id);
  });
  const stopResumed = ctx.onResumed(() => {
    pager.reset();
    loadMore();
  });
  const stopObserving = onVisible(sentinel, loadMore);
  renderList();
  loadMore();

  return {
    el,
    dispose: () => {
      stopListening();
      stopResumed();
      stopObserving();
      open?.dispose();
      pager.reset();
    },
  };
}
