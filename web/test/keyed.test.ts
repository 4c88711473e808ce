import { describe, expect, it } from "vitest";
import { KeyedList, Pager, type Page } from "../src/keyed.js";

type Item = { id: string; v?: number };
const byIdDesc = (a: Item, b: Item): number => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

describe("KeyedList", () => {
  it("keeps one item per key, in order, whoever added it first", () => {
    const list = new KeyedList<Item>((i) => i.id, byIdDesc);
    list.upsert({ id: "b" }, { id: "a" });
    list.upsert({ id: "c" }, { id: "b", v: 2 });
    expect(list.items).toEqual([{ id: "c" }, { id: "b", v: 2 }, { id: "a" }]);
    list.remove("b", "missing");
    expect(list.items.map((i) => i.id)).toEqual(["c", "a"]);
    list.update((i) => i.id === "a", (i) => ({ ...i, v: 9 }));
    expect(list.get("a")).toEqual({ id: "a", v: 9 });
  });
});

/** A paged server over `all` (newest first), answering when `release` is called. */
function pagedServer(all: Item[], size: number) {
  const pending: (() => void)[] = [];
  const tokens: string[] = [];
  const fetch = (token: string): Promise<Page<Item>> => {
    tokens.push(token);
    const start = token ? Number(token) : 0;
    const page = { items: all.slice(start, start + size), nextPageToken: start + size < all.length ? String(start + size) : "" };
    return new Promise((resolve) => pending.push(() => resolve(page)));
  };
  return { fetch, tokens, release: () => pending.shift()?.() };
}

describe("Pager", () => {
  const items = Array.from({ length: 5 }, (_, i) => ({ id: `n${9 - i}` }));

  it("walks the pages with their tokens until the last, without duplicates", async () => {
    const server = pagedServer(items, 2);
    const pager = new Pager(server.fetch, (i: Item) => i.id, byIdDesc);
    for (let i = 0; i < 3; i++) {
      const p = pager.loadMore();
      server.release();
      await p;
    }
    expect(server.tokens).toEqual(["", "2", "4"]);
    expect(pager.done).toBe(true);
    expect(pager.list.items.map((i) => i.id)).toEqual(["n9", "n8", "n7", "n6", "n5"]);
    await pager.loadMore();
    expect(server.tokens).toHaveLength(3);
  });

  it("shares a request already running (a scroll event twice)", async () => {
    const server = pagedServer(items, 2);
    const pager = new Pager(server.fetch, (i: Item) => i.id, byIdDesc);
    const a = pager.loadMore();
    const b = pager.loadMore();
    expect(a).toBe(b);
    server.release();
    await a;
    expect(server.tokens).toEqual([""]);
  });

  it("a live item that a page also carries is shown once", async () => {
    const server = pagedServer(items, 5);
    const pager = new Pager(server.fetch, (i: Item) => i.id, byIdDesc);
    pager.list.upsert({ id: "n8" });
    const p = pager.loadMore();
    server.release();
    await p;
    expect(pager.list.items.map((i) => i.id)).toEqual(["n9", "n8", "n7", "n6", "n5"]);
  });

  it("drops the answer of a request made before a reset", async () => {
    const server = pagedServer(items, 2);
    const pager = new Pager(server.fetch, (i: Item) => i.id, byIdDesc);
    const stale = pager.loadMore();
    pager.reset();
    const fresh = pager.loadMore();
    server.release();
    server.release();
    await Promise.all([stale, fresh]);
    expect(pager.list.items.map((i) => i.id)).toEqual(["n9", "n8"]);
    expect(server.tokens).toEqual(["", ""]);
  });
});
