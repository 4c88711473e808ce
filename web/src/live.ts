import { Code, ConnectError } from "@connectrpc/connect";
import type { SubscribeResponse } from "./gen/switchboard/notification/v1/notification_service_pb.js";
import { StateChange } from "./gen/switchboard/notification/v1/notification_service_pb.js";
import { Backoff } from "./backoff.js";

/** What the page shows about its stream. */
export type LiveStatus = "connecting" | "live" | "reconnecting" | "signed-out" | "stopped";

export interface LiveOptions {
  /** Opens one Subscribe call (`resumeAfter` empty: live only). */
  open: (resumeAfter: string, signal: AbortSignal) => AsyncIterable<SubscribeResponse>;
  /** Every event, in order, without repeats. */
  onEvent: (event: SubscribeResponse) => void;
  onStatus: (status: LiveStatus) => void;
  /** Called when a stream is live again after a drop: state changes made meanwhile (which
   * Subscribe does not replay) are re-read by the page. */
  onResumed?: () => void;
  /** The newest notification the page already has: the first Subscribe resumes after it. */
  resumeAfter?: string;
  backoff?: Backoff;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** How long a stream must stay up before its next failure counts as a fresh one. */
const STABLE_MS = 5_000;

/**
 * One Subscribe stream per page that never gives up on its own: when the call ends (server
 * restart, network) it reopens with `resume_after` set to the last notification it delivered,
 * so what was sent meanwhile arrives once, after a backoff. UNAUTHENTICATED ends it for good
 * (the token expired: retrying cannot help). A notification id already delivered is dropped,
 * unless the notification was snoozed since (a wake delivers the same id again).
 */
export class LiveStream {
  private cursor: string;
  private readonly delivered = new Set<string>();
  private abort: AbortController | null = null;
  private stopped = false;
  private readonly backoff: Backoff;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(private readonly options: LiveOptions) {
    this.cursor = options.resumeAfter ?? "";
    this.backoff = options.backoff ?? new Backoff();
    this.sleep = options.sleep ?? abortableSleep;
  }

  /** The id the next Subscribe resumes after. */
  get resumeAfter(): string {
    return this.cursor;
  }

  /** Runs until `stop()` or UNAUTHENTICATED; resolves then. */
  async run(): Promise<void> {
    let dropped = false;
    while (!this.stopped) {
      const abort = new AbortController();
      this.abort = abort;
      this.options.onStatus(dropped ? "reconnecting" : "connecting");
      let liveSince = 0;
      try {
        for await (const event of this.options.open(this.cursor, abort.signal)) {
          if (liveSince === 0) {
            liveSince = Date.now();
            this.options.onStatus("live");
            if (dropped) this.options.onResumed?.();
          }
          this.deliver(event);
        }
      } catch (err) {
        if (this.stopped) break;
        if (ConnectError.from(err).code === Code.Unauthenticated) {
          this.stopped = true;
          this.options.onStatus("signed-out");
          return;
        }
      }
      if (this.stopped) break;
      if (liveSince !== 0 && Date.now() - liveSince >= STABLE_MS) this.backoff.reset();
      dropped = true;
      this.options.onStatus("reconnecting");
      await this.sleep(this.backoff.next(), abort.signal).catch(() => undefined);
    }
    this.options.onStatus("stopped");
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private deliver(event: SubscribeResponse): void {
    const e = event.event;
    if (e.case === "notification") {
      const id = e.value.id;
      if (this.delivered.has(id)) return;
      this.delivered.add(id);
      // Subscribe resumes from where this id was sent (a wake included), not by id order.
      this.cursor = id;
    } else if (e.case === "state" && e.value.change === StateChange.SNOOZED) {
      if (e.value.all) this.delivered.clear();
      for (const id of e.value.ids) this.delivered.delete(id);
    }
    this.options.onEvent(event);
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
