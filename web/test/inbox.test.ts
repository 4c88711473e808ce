import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ArchiveState, NotificationSchema, ReadState } from "../src/gen/switchboard/notification/v1/notification_service_pb.js";
import { belongs, listRequest } from "../src/inbox.js";
import { snoozeChoices, muteFor8Hours } from "../src/snooze.js";
import { conversationOfLink, Draft } from "../src/conversation.js";
import { sessionOf } from "../src/session.js";

describe("inbox tabs", () => {
  it("ask List for what each tab shows", () => {
    expect(listRequest("unread", "build", "t")).toMatchObject({ state: ReadState.UNREAD, category: "build", pageToken: "t", archiveState: ArchiveState.UNSPECIFIED });
    expect(listRequest("read", "", "")).toMatchObject({ state: ReadState.READ });
    expect(listRequest("all", "", "")).toMatchObject({ state: ReadState.UNSPECIFIED, archiveState: ArchiveState.UNSPECIFIED });
    expect(listRequest("archived", "", "")).toMatchObject({ state: ReadState.UNSPECIFIED, archiveState: ArchiveState.ARCHIVED });
  });

  it("place a live notification in the tabs it belongs to only", () => {
    const n = create(NotificationSchema, { id: "1", category: "build" });
    expect(belongs(n, "unread", "")).toBe(true);
    expect(belongs(n, "unread", "build")).toBe(true);
    expect(belongs(n, "unread", "deploy")).toBe(false);
    expect(belongs(n, "read", "")).toBe(false);
    expect(belongs(n, "archived", "")).toBe(false);
    expect(belongs({ ...n, snoozedUntil: timestampFromDate(new Date()) }, "all", "")).toBe(false);
    expect(belongs({ ...n, archived: true }, "archived", "")).toBe(true);
  });
});

describe("snooze choices", () => {
  it("are an hour from now, tomorrow at 9 and next Monday at 9, in local time", () => {
    const wednesday = new Date(2026, 11, 2, 15, 30);
    const [hour, tomorrow, week] = snoozeChoices(wednesday);
    expect(hour?.until).toEqual(new Date(2026, 11, 2, 16, 30));
    expect(tomorrow?.until).toEqual(new Date(2026, 11, 3, 9, 0));
    expect(week?.until).toEqual(new Date(2026, 11, 7, 9, 0));
  });

  it("a Monday snoozes to the Monday after", () => {
    expect(snoozeChoices(new Date(2026, 11, 7, 8, 0))[2]?.until).toEqual(new Date(2026, 11, 14, 9, 0));
  });

  it("mute for 8 hours ends 8 hours later", () => {
    expect(muteFor8Hours(new Date(0)).getTime()).toBe(8 * 3600 * 1000);
  });
});

describe("messages", () => {
  it("a retry of the same text keeps its idempotency key; a new text gets a new one", () => {
    let n = 0;
    const draft = new Draft(() => `k${++n}`);
    expect(draft.keyFor("hi")).toBe("k1");
    expect(draft.keyFor("hi")).toBe("k1");
    expect(draft.keyFor("hi!")).toBe("k2");
    draft.sent();
    expect(draft.keyFor("hi!")).toBe("k3");
  });

  it("a notification link names its conversation", () => {
    expect(conversationOfLink("/conversations/abc-1")).toBe("abc-1");
    expect(conversationOfLink("/runs/42")).toBeNull();
    expect(conversationOfLink("/conversations/a/b")).toBeNull();
  });
});

describe("session", () => {
  const token = (claims: object): string =>
    `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`;

  it("reads who is signed in from the token's claims", () => {
    expect(sessionOf(token({ sub: "u1", preferred_username: "zoë", exp: 5 }))).toMatchObject({ userId: "u1", username: "zoë", expiresAt: 5 });
    expect(sessionOf(token({ sub: "u2" }))?.username).toBe("u2");
  });

  it("refuses what is not a JWT with a subject", () => {
    expect(sessionOf("not a token")).toBeNull();
    expect(sessionOf(token({ name: "x" }))).toBeNull();
    expect(sessionOf("a.%%%.c")).toBeNull();
  });
});
