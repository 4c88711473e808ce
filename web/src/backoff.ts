/** Reconnect delays: exponential from `baseMs` up to `maxMs`, with full jitter so many tabs
 * that lost the same server do not come back at the same instant. */
export class Backoff {
  private attempt = 0;

  constructor(
    readonly baseMs = 500,
    readonly maxMs = 15_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call doubles the ceiling. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(ceiling / 2 + (ceiling / 2) * this.random());
  }

  /** After a stream went live: the next failure starts from the base again. */
  reset(): void {
    this.attempt = 0;
  }
}
