import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  NotificationSchema,
  StateChange,
  SubscribeResponseSchema,
  type SubscribeResponse,
} from "../src/gen/switchboard/notification/v1/notification_service_pb.js";
import { Backoff } from "../src/backoff.js";
import { LiveStream, type LiveStatus } from "../src/live.js";

const note = (id: string): SubscribeResponse =>
  create(SubscribeResponseSchema, { event: { case: "notification", value: create(NotificationSchema, { id, content: id }) } });
const snoozed = (ids: string[]): SubscribeResponse =>
  create(SubscribeResponseSchema, { event: { case: "state", value: { change: StateChange.SNOOZED, ids } } });

/** A Subscribe that plays scripted streams in turn: each yields its events, then ends with
 * its error (or stays open until aborted when it has none). */
type Script = { events: SubscribeResponse[]; end?: Error; hang?: boolean };
function server(scripts: Script[]) {
  const calls: string[] = [];
  const open = (resumeAfter: string, signal: AbortSignal): AsyncIterable<SubscribeResponse> => {
    calls.push(resumeAfter);
    const script = scripts.shift() ?? { events: [], hang: true };
    return (async function* () {
      for (const event of script.events) yield event;
      if (script.end) throw script.end;
      if (script.hang) await new Promise((resolve) => signal.addEventListener("abort", resolve));
    })();
  };
  return { calls, open };
}

function run(scripts: Script[], resumeAfter = "") {
  const s = server(scripts);
  const events: string[] = [];
  const statuses: LiveStatus[] = [];
  const sleeps: number[] = [];
  let resumed = 0;
  const live = new LiveStream({
    open: s.open,
    onEvent: (e) => events.push(e.event.case === "notification" ? e.event.value.id : String(e.event.case)),
    onStatus: (status) => statuses.push(status),
    onResumed: () => (resumed += 1),
    resumeAfter,
    backoff: new Backoff(500, 15_000, () => 1),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { live, calls: s.calls, events, statuses, sleeps, resumed: () => resumed };
}

const dropped = new ConnectError("gone", Code.Unavailable);

describe("LiveStream", () => {
  it("resumes after the last notification it delivered, with backoff, and reports the drop", async () => {
    const t = run([{ events: [note("a"), note("b")], end: dropped }, { events: [note("c")], end: dropped }, { events: [], end: new ConnectError("expired", Code.Unauthenticated) }], "start");
    await t.live.run();
    expect(t.calls).toEqual(["start", "b", "c"]);
    expect(t.events).toEqual(["a", "b", "c"]);
    expect(t.sleeps).toEqual([500, 1000]);
    expect(t.resumed()).toBe(1);
    expect(t.statuses).toEqual(["connecting", "live", "reconnecting", "reconnecting", "live", "reconnecting", "reconnecting", "signed-out"]);
  });

  it("never delivers a notification twice (a replay after resume overlaps what was seen)", async () => {
    const t = run([{ events: [note("a"), note("b")], end: dropped }, { events: [note("b"), note("c")], end: new ConnectError("x", Code.Unauthenticated) }]);
    await t.live.run();
    expect(t.events).toEqual(["a", "b", "c"]);
  });

  it("delivers a snoozed notification again when it wakes", async () => {
    const t = run([{ events: [note("a"), snoozed(["a"]), note("a")], end: new ConnectError("x", Code.Unauthenticated) }]);
    await t.live.run();
    expect(t.events).toEqual(["a", "state", "a"]);
  });

  it("stops for good on UNAUTHENTICATED: no retry loop", async () => {
    const t = run([{ events: [], end: new ConnectError("token expired", Code.Unauthenticated) }, { events: [note("never")] }]);
    await t.live.run();
    expect(t.calls).toHaveLength(1);
    expect(t.sleeps).toEqual([]);
    expect(t.statuses.at(-1)).toBe("signed-out");
  });

  it("grows the delay while the server stays away, up to the ceiling", async () => {
    const scripts: Script[] = Array.from({ length: 8 }, () => ({ events: [], end: dropped }));
    scripts.push({ events: [], end: new ConnectError("x", Code.Unauthenticated) });
    const t = run(scripts);
    await t.live.run();
    expect(t.sleeps).toEqual([500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    expect(t.resumed()).toBe(0);
  });

  it("stop() ends an open stream and the loop", async () => {
    const t = run([{ events: [note("a")], hang: true }]);
    const done = t.live.run();
    await new Promise((r) => setTimeout(r, 10));
    t.live.stop();
    await done;
    expect(t.calls).toHaveLength(1);
    expect(t.statuses.at(-1)).toBe("stopped");
  });
});

describe("Backoff", () => {
  it("jitters within the upper half of the doubling ceiling", () => {
    const low = new Backoff(500, 15_000, () => 0);
    expect([low.next(), low.next(), low.next()]).toEqual([250, 500, 1000]);
    low.reset();
    expect(low.next()).toBe(250);
  });
});
