/** A list of items with unique keys in one order: adding an item whose key is there replaces
 * it, so a live event and a page that both carry an item show it once. */
export class KeyedList<T> {
  private readonly byKey = new Map<string, T>();
  private ordered: T[] = [];

  constructor(
    private readonly key: (item: T) => string,
    /** Negative when `a` comes first. */
    private readonly compare: (a: T, b: T) => number,
  ) {}

  get items(): readonly T[] {
    return this.ordered;
  }

  get size(): number {
    return this.ordered.length;
  }

  get(key: string): T | undefined {
    return this.byKey.get(key);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Inserts or replaces each item, keeping the order. */
  upsert(...items: T[]): void {
    for (const item of items) this.byKey.set(this.key(item), item);
    this.ordered = [...this.byKey.values()].sort(this.compare);
  }

  remove(...keys: string[]): void {
    let changed = false;
    for (const key of keys) changed = this.byKey.delete(key) || changed;
    if (changed) this.ordered = this.ordered.filter((item) => this.byKey.has(this.key(item)));
  }

  /** Applies `change` to the items it selects (a new object replaces the old one). */
  update(select: (item: T) => boolean, change: (item: T) => T): void {
    const updated = this.ordered.filter(select).map(change);
    if (updated.length > 0) this.upsert(...updated);
  }

  clear(): void {
    this.byKey.clear();
    this.ordered = [];
  }
}

export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/**
 * Infinite scroll over a paged RPC: `loadMore` fetches the next page (one request at a time;
 * a second call while one runs shares it), items merge into a `KeyedList` so an item a live
 * event already added is not shown twice, and `reset` (new filters) drops the answer of a
 * request still running for the old ones.
 */
export class Pager<T> {
  readonly list: KeyedList<T>;
  private token = "";
  private finished = false;
  private running: Promise<void> | null = null;
  private generation = 0;

  constructor(
    private readonly fetch: (pageToken: string) => Promise<Page<T>>,
    key: (item: T) => string,
    compare: (a: T, b: T) => number,
  ) {
    this.list = new KeyedList(key, compare);
  }

  /** True once the last page is in. */
  get done(): boolean {
    return this.finished;
  }

  get loading(): boolean {
    return this.running !== null;
  }

  loadMore(): Promise<void> {
    if (this.finished) return Promise.resolve();
    if (this.running) return this.running;
    const generation = this.generation;
    const run = this.fetch(this.token)
      .then((page) => {
        if (generation !== this.generation) return;
        this.list.upsert(...page.items);
        this.token = page.nextPageToken;
        this.finished = page.nextPageToken === "";
      })
      .finally(() => {
        if (generation === this.generation) this.running = null;
      });
    this.running = run;
    return run;
  }

  /** Forgets every page (the filters changed, or state changed while the stream was down). */
  reset(): void {
    this.generation += 1;
    this.running = null;
    this.token = "";
    this.finished = false;
    this.list.clear();
  }
}
