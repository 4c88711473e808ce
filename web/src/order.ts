import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Conversation, Message } from "./gen/switchboard/conversation/v1/conversation_service_pb.js";
import type { Notification } from "./gen/switchboard/notification/v1/notification_service_pb.js";

/** Earlier timestamps compare lower; a missing one is the earliest. */
export function compareTimestamps(a: Timestamp | undefined, b: Timestamp | undefined): number {
  const as = a?.seconds ?? 0n;
  const bs = b?.seconds ?? 0n;
  if (as !== bs) return as < bs ? -1 : 1;
  return (a?.nanos ?? 0) - (b?.nanos ?? 0);
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Notifications newest first: ids are UUIDv7, so their order is the order they were stored in. */
export function newestFirst(a: Notification, b: Notification): number {
  return byId(b, a);
}

/** Conversations most recent first: by the last message, else by when they started. */
export function mostRecentFirst(a: Conversation, b: Conversation): number {
  const byTime = compareTimestamps(b.lastMessage?.createdAt ?? b.createdAt, a.lastMessage?.createdAt ?? a.createdAt);
  return byTime !== 0 ? byTime : byId(a, b);
}

/** Messages oldest first, the order a conversation reads in. */
export function oldestFirst(a: Message, b: Message): number {
  const byTime = compareTimestamps(a.createdAt, b.createdAt);
  return byTime !== 0 ? byTime : byId(a, b);
}
