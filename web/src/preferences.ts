import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { CategoryPreference, Preferences } from "./gen/switchboard/notification/v1/notification_service_pb.js";
import { errorText } from "./api.js";
import type { Context, View } from "./app.js";
import { formatDateTime, h } from "./dom.js";
import { muteFor8Hours } from "./snooze.js";

type Mute = { kind: "off" } | { kind: "forever" } | { kind: "until"; until: Date };

function muteOf(entry: CategoryPreference | undefined): Mute {
  if (!entry?.muted) return { kind: "off" };
  return entry.mutedUntil ? { kind: "until", until: timestampDate(entry.mutedUntil) } : { kind: "forever" };
}

/**
 * Category mutes: each known category with "mute for 8 hours", "mute until I turn it back
 * on" and "unmute". UpdatePreferences replaces the whole set, so every change sends the
 * current set with one entry changed; a change made in another tab arrives as a
 * `preferences` event and redraws the page.
 */
export function renderPreferences(ctx: Context): View {
  const rows = h("ul", { class: "preferences" });
  const error = h("p", { class: "error", role: "alert" });
  const input = h("input", { id: "new-category", name: "category", autocomplete: "off", placeholder: "e.g. build.failed", "aria-describedby": "new-category-error" });
  const inputError = h("p", { class: "field-error", id: "new-category-error", role: "alert" });
  let current: Preferences | null = ctx.preferences();
  const extra = new Set<string>();

  const entries = (): Map<string, CategoryPreference> => new Map((current?.categories ?? []).map((c) => [c.category, c]));

  const save = async (category: string, mute: Mute): Promise<void> => {
    error.textContent = "";
    const next = [...entries().values()]
      .filter((c) => c.category !== category)
      .map((c) => ({ category: c.category, muted: c.muted, mutedUntil: c.mutedUntil }));
    if (mute.kind !== "off") next.push({ category, muted: true, mutedUntil: mute.kind === "until" ? timestampFromDate(mute.until) : undefined });
    try {
      const response = await ctx.api.notifications.updatePreferences({ preferences: { categories: next } });
      if (response.preferences) {
        current = response.preferences;
        ctx.setPreferences(response.preferences);
      }
      render();
    } catch (err) {
      error.textContent = errorText(err);
    }
  };

  const render = (): void => {
    const byCategory = entries();
    const names = new Set([...ctx.categories(), ...byCategory.keys(), ...extra]);
    if (names.size === 0) {
      rows.replaceChildren(h("li", { class: "empty" }, "No categories yet: they appear here as notifications arrive."));
      return;
    }
    rows.replaceChildren(
      ...[...names].sort().map((category) => {
        const mute = muteOf(byCategory.get(category));
        const state =
          mute.kind === "off" ? "On" : mute.kind === "forever" ? "Muted until you turn it back on" : `Muted until ${formatDateTime(mute.until)}`;
        const labelId = `pref-${category}`;
        return h(
          "li",
          { class: `preference${mute.kind === "off" ? "" : " muted"}`, "data-category": category },
          h("span", { class: "name", id: labelId }, category),
          h("span", { class: "state" }, state),
          h(
            "div",
            { class: "actions", role: "group", "aria-labelledby": labelId },
            mute.kind === "off"
              ? h("button", { type: "button", onclick: () => void save(category, { kind: "until", until: muteFor8Hours(new Date()) }) }, "Mute for 8 hours")
              : null,
            mute.kind === "off" ? h("button", { type: "button", onclick: () => void save(category, { kind: "forever" }) }, "Mute until I turn it back on") : null,
            mute.kind === "off" ? null : h("button", { type: "button", onclick: () => void save(category, { kind: "off" }) }, "Unmute"),
          ),
        );
      }),
    );
  };

  const add = h(
    "form",
    { class: "add-category" },
    h("label", { for: "new-category" }, "Another category"),
    input,
    h("button", { type: "submit", class: "secondary" }, "Add"),
    inputError,
  );
  add.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(name)) {
      inputError.textContent = "A category is lower case letters, digits, '_', '.' or '-', starting with a letter.";
      input.setAttribute("aria-invalid", "true");
      return;
    }
    inputError.textContent = "";
    input.removeAttribute("aria-invalid");
    input.value = "";
    extra.add(name);
    render();
  });

  const el = h(
    "section",
    { class: "preferences-page", "aria-labelledby": "preferences-title" },
    h("h1", { id: "preferences-title" }, "Preferences"),
    h("p", { class: "help" }, "A muted category sends you nothing new until the mute ends. A category covers the ones below it (build covers build.failed)."),
    error,
    rows,
    add,
  );

  const stop = ctx.listen((event) => {
    if (event.event.case === "preferences") {
      current = event.event.value;
      render();
    } else if (event.event.case === "counts") {
      render();
    }
  });
  render();
  ctx.api.notifications
    .getPreferences({})
    .then((response) => {
      if (response.preferences) {
        current = response.preferences;
        ctx.setPreferences(response.preferences);
      }
      render();
    })
    .catch((err: unknown) => {
      error.textContent = errorText(err);
    });

  return { el, dispose: stop };
}
