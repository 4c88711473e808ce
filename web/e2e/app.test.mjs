// The web app in a real browser (Debian's chromium) against the real stack, on SQLite and
// on PostgreSQL. Each describe is one session of Alice and Bob; its tests run in order and
// build on each other, like a person's afternoon.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createHmac } from "node:crypto";
import { Stack, ALL_SCOPES, ROOT } from "./stack.mjs";
import {
  launch, openAs, live, eventually, text, inboxItems, unreadTabCount, badge, categoryCount, assertNoErrors, PHONE, DESKTOP,
} from "./browser.mjs";

const SEND = "switchboard.notification.v1.NotificationService/Send";
const OUTPUT = process.env.E2E_OUTPUT ?? join(ROOT, "web", "e2e-output");

/** A token valid for `seconds` more (the gateway allows 30 s of clock leeway past `exp`). */
function shortToken(secret, user, seconds) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, preferred_username: user, iat: now, exp: now - 30 + seconds })}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

// E2E_BACKENDS=sqlite runs one backend only (while working on the app).
for (const backend of (process.env.E2E_BACKENDS ?? "sqlite,postgres").split(",")) {
  describe(`web app on ${backend}`, () => {
    const stack = new Stack(backend);
    let browser;
    let alice;
    let bob;
    let ops;
    const shots = join(OUTPUT, backend);
    const send = (body) => stack.grpcurl(ops, SEND, body);
    const goto = async (person, route) => {
      await person.page.locator(`header.top nav a[data-route="${route}"]`).click();
    };

    before(async () => {
      mkdirSync(shots, { recursive: true });
      await stack.start();
      browser = await launch();
      ops = stack.token("ops", { scopes: ALL_SCOPES });
      alice = await openAs(browser, stack.url, stack.token("alice"));
      bob = await openAs(browser, stack.url, stack.token("bob"));
    });

    after(async () => {
      await browser?.close();
      await stack.stop();
    });

    it("serves the app with a strict CSP, no token needed, and signs in from the link", async () => {
      const index = await fetch(`${stack.url}/conversations/anything`);
      assert.equal(index.status, 200);
      assert.match(index.headers.get("content-type") ?? "", /^text\/html/);
      const csp = index.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
      // The token left the address bar and sits in this tab's sessionStorage.
      assert.equal(new URL(bob.page.url()).hash, "");
      assert.ok(await bob.page.evaluate(() => sessionStorage.getItem("switchboard.token")));
      assert.equal(await text(bob.page.locator("header.top .who")), "bob");
    });

    it("Alice starts a conversation with bob; errors are shown inline", async () => {
      const page = alice.page;
      await goto(alice, "messages");
      const input = page.locator("#new-username");
      const error = page.locator("#new-username-error");
      await page.getByRole("button", { name: "Start" }).click();
      await eventually(async () => assert.match(await text(error), /Enter the username/));
      await input.fill("nobody-here");
      await input.press("Enter");
      await eventually(async () => assert.match(await text(error), /no user named "nobody-here"/));
      await input.fill("alice");
      await input.press("Enter");
      await eventually(async () => assert.match(await text(error), /yourself/i));
      assert.equal(await input.getAttribute("aria-invalid"), "true");

      await goto(bob, "messages");
      await input.fill("bob");
      await input.press("Enter");
      await page.waitForURL(/\/conversations\/[^/]+$/);
      const box = page.getByRole("textbox", { name: "Message" });
      await box.fill("Hi Bob");
      await box.press("Shift+Enter");
      await box.pressSequentially("two lines");
      await box.press("Enter");
      await eventually(async () => assert.deepEqual(await page.locator(".messages .message.mine .text").allTextContents(), ["Hi Bob\ntwo lines"]));
      assert.equal(await box.inputValue(), "");
    });

    it("Bob's messenger and badge show the message live; opening it reads it on both views", async () => {
      const page = bob.page;
      const row = page.locator(".conversations .conversation").first();
      await eventually(async () => {
        assert.equal(await text(row.locator(".name")), "alice");
        assert.match(await text(row.locator(".last")), /Hi Bob/);
        assert.equal(await text(row.locator('[data-count="unread"]')), "1");
        assert.equal(await badge(page), "1");
        assert.equal(await text(page.locator("header.top nav a[data-route=messages] .badge")), "1");
      });
      await row.locator("a").click();
      await eventually(async () => assert.deepEqual(await page.locator(".messages .message.theirs .text").allTextContents(), ["Hi Bob\ntwo lines"]));
      await eventually(async () => {
        assert.equal(await text(row.locator('[data-count="unread"]')), "");
        assert.equal(await text(page.locator("header.top nav a[data-route=messages] .badge")), "");
      });
      // Bob answers; Alice's open conversation shows it without a reload.
      await page.getByRole("textbox", { name: "Message" }).fill("Hello Alice");
      await page.getByRole("textbox", { name: "Message" }).press("Enter");
      await eventually(async () => assert.deepEqual(await alice.page.locator(".messages .message.theirs .text").allTextContents(), ["Hello Alice"]));
      await page.screenshot({ path: join(shots, "messenger-desktop.png") });
      await goto(bob, "inbox");
      await eventually(async () => assert.equal(await categoryCount(page, "conversation.message"), ""));
    });

    it("mark all read updates the counts and the badge", async () => {
      const page = bob.page;
      await goto(bob, "messages");
      for (const n of [1, 2, 3]) send({ recipient_ids: ["bob"], category: "build", content: `Build ${n} passed`, link: "/runs/" + n });
      await eventually(async () => assert.equal(await badge(page), "3"));
      await goto(bob, "inbox");
      await eventually(async () => assert.deepEqual(await inboxItems(page), ["Build 3 passed", "Build 2 passed", "Build 1 passed"]));
      // Shown is seen: the badge (unseen) clears, the unread counts stay.
      await eventually(async () => assert.equal(await badge(page), ""));
      assert.equal(await unreadTabCount(page), "3");
      assert.equal(await categoryCount(page, "build"), "3");
      await page.screenshot({ path: join(shots, "inbox-desktop.png") });
      await page.getByRole("button", { name: "Mark all read" }).click();
      await eventually(async () => {
        assert.equal(await unreadTabCount(page), "0");
        assert.equal(await categoryCount(page, "build"), "");
        assert.deepEqual(await inboxItems(page), []);
      });
      await page.getByRole("tab", { name: /^Read/ }).click();
      await eventually(async () => assert.equal((await inboxItems(page)).length, 4));
    });

    it("archive and snooze move items out of the inbox and the counts follow", async () => {
      const page = bob.page;
      await page.getByRole("tab", { name: /^Unread/ }).click();
      send({ recipient_ids: ["bob"], category: "deploy", content: "Deploy to staging", link: "" });
      send({ recipient_ids: ["bob"], category: "deploy", content: "Deploy to production", link: "" });
      await eventually(async () => {
        assert.deepEqual(await inboxItems(page), ["Deploy to production", "Deploy to staging"]);
        assert.equal(await unreadTabCount(page), "2");
      });
      const item = (content) => page.locator(".notification", { hasText: content });
      await item("Deploy to staging").getByRole("button", { name: "Archive" }).click();
      await eventually(async () => {
        assert.deepEqual(await inboxItems(page), ["Deploy to production"]);
        assert.equal(await unreadTabCount(page), "1");
      });
      await item("Deploy to production").getByRole("button", { name: "Snooze" }).click();
      await item("Deploy to production").getByRole("button", { name: "1 hour" }).click();
      await eventually(async () => {
        assert.deepEqual(await inboxItems(page), []);
        assert.equal(await unreadTabCount(page), "0");
      });
      await page.getByRole("tab", { name: "Archived" }).click();
      await eventually(async () => assert.deepEqual(await inboxItems(page), ["Deploy to staging"]));
      await item("Deploy to staging").getByRole("button", { name: "Unarchive" }).click();
      await eventually(async () => assert.deepEqual(await inboxItems(page), []));
      await page.getByRole("tab", { name: /^Unread/ }).click();
      await eventually(async () => {
        assert.deepEqual(await inboxItems(page), ["Deploy to staging"]);
        assert.equal(await unreadTabCount(page), "1");
      });
    });

    it("a muted category stops showing new notifications", async () => {
      const page = bob.page;
      await goto(bob, "preferences");
      const row = page.locator('.preference[data-category="deploy"]');
      await row.getByRole("button", { name: "Mute for 8 hours" }).click();
      await eventually(async () => assert.match(await text(row.locator(".state")), /Muted until/));
      await goto(bob, "inbox");
      await eventually(async () => assert.deepEqual(await inboxItems(page), ["Deploy to staging"]));
      const muted = send({ recipient_ids: ["bob"], category: "deploy", content: "Deploy muted", link: "" });
      assert.deepEqual(muted.mutedRecipientIds, ["bob"]);
      send({ recipient_ids: ["bob"], category: "build", content: "Build 4 failed", link: "" });
      await eventually(async () => assert.deepEqual(await inboxItems(page), ["Build 4 failed", "Deploy to staging"]));
      await goto(bob, "preferences");
      await row.getByRole("button", { name: "Unmute" }).click();
      await eventually(async () => assert.equal(await text(row.locator(".state")), "On"));
      await goto(bob, "inbox");
    });

    it("a broadcast appears for both, and each reads it separately", async () => {
      await goto(alice, "inbox");
      send({ broadcast: true, category: "news", content: "Maintenance tonight", link: "" });
      for (const person of [alice, bob]) {
        await eventually(async () => {
          assert.equal((await inboxItems(person.page))[0], "Maintenance tonight");
          assert.equal(await categoryCount(person.page, "news"), "1");
        });
      }
      await alice.page.locator(".notification", { hasText: "Maintenance tonight" }).locator("a.open").click();
      await eventually(async () => assert.equal(await categoryCount(alice.page, "news"), ""));
      await eventually(async () => assert.equal(await categoryCount(bob.page, "news"), "1"));
      assert.equal((await inboxItems(bob.page))[0], "Maintenance tonight");
    });

    it("state changes made in Bob's other tab apply at once", async () => {
      const other = await bob.context.newPage();
      await other.goto(`${stack.url}/#token=${stack.token("bob")}`);
      await live(other);
      await eventually(async () => assert.equal((await inboxItems(other))[0], "Maintenance tonight"));
      const before = Number(await unreadTabCount(bob.page));
      await other.locator(".notification", { hasText: "Maintenance tonight" }).getByRole("button", { name: "Archive" }).click();
      await eventually(async () => {
        assert.ok(!(await inboxItems(bob.page)).includes("Maintenance tonight"));
        assert.equal(Number(await unreadTabCount(bob.page)), before - 1);
      });
      await other.close();
    });

    it("the inbox loads page after page as it scrolls, each item once, newest first", async () => {
      for (let n = 1; n <= 45; n++) send({ recipient_ids: ["dana"], category: "bulk", content: `Item ${n}`, link: "" });
      const dana = await openAs(browser, stack.url, stack.token("dana"));
      const page = dana.page;
      // The broadcast from before is in her inbox too; the category holds the 45 alone.
      await page.locator('.categories a[data-category="bulk"]').click();
      await eventually(async () => assert.equal((await inboxItems(page)).length, 20));
      await eventually(async () => {
        await page.locator(".list-pane .sentinel").scrollIntoViewIfNeeded().catch(() => undefined);
        assert.equal((await inboxItems(page)).length, 45);
      }, 15_000);
      const expected = Array.from({ length: 45 }, (_, i) => `Item ${45 - i}`);
      assert.deepEqual(await inboxItems(page), expected);
      assert.equal(await unreadTabCount(page), "45");
      assertNoErrors(dana);
      await dana.context.close();
    });

    it("a conversation loads older messages on scrolling up, and a lost answer's retry stores one message", async () => {
      const page = alice.page;
      await goto(alice, "messages");
      await page.locator(".conversations .conversation a").first().click();
      await eventually(async () => assert.equal(await page.locator(".messages .message").count(), 2));
      const id = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
      const aliceToken = stack.token("alice");
      for (let n = 1; n <= 40; n++) {
        stack.grpcurl(aliceToken, "switchboard.conversation.v1.ConversationService/SendMessage", { conversation_id: id, content: `Older ${n}` });
      }
      await page.reload();
      await live(page);
      const texts = () => page.locator(".messages .message .text").allTextContents();
      await eventually(async () => assert.equal((await texts()).at(-1), "Older 40"));
      assert.equal((await texts()).length, 30, "the newest page first");
      await eventually(async () => {
        await page.locator(".message-scroller").evaluate((el) => (el.scrollTop = 0));
        assert.equal((await texts()).length, 42);
      }, 15_000);
      const all = await texts();
      assert.equal(all[0], "Hi Bob\ntwo lines");
      assert.equal(new Set(all).size, all.length);

      // The first SendMessage reaches the server, but its answer is lost on the way back.
      let lost = false;
      await page.route("**/switchboard.conversation.v1.ConversationService/SendMessage", async (route) => {
        if (lost) return route.continue();
        lost = true;
        await route.fetch();
        await route.abort("connectionreset");
      });
      const box = page.getByRole("textbox", { name: "Message" });
      await box.fill("Exactly once");
      await box.press("Enter");
      await eventually(async () => assert.match(await text(page.locator(".conversation-view > .error")), /Not sent/));
      assert.equal(await box.inputValue(), "Exactly once");
      await box.press("Enter");
      await eventually(async () => assert.equal((await texts()).at(-1), "Exactly once"));
      await page.unroute("**/switchboard.conversation.v1.ConversationService/SendMessage");
      const stored = stack.grpcurl(aliceToken, "switchboard.conversation.v1.ConversationService/ListMessages", { conversation_id: id, page_size: 5 });
      assert.equal(stored.messages.filter((m) => m.content === "Exactly once").length, 1);
    });

    it("notification-svc restarts mid-session: Bob's page reconnects and shows what was sent meanwhile once", async () => {
      const page = bob.page;
      await stack.stopNotification();
      await eventually(async () => assert.equal(await page.locator(".live-status").getAttribute("data-state"), "reconnecting"));
      // Alice writes while notification-svc is down: conversation-svc's outbox keeps it.
      await goto(alice, "messages");
      await alice.page.locator(".conversations .conversation a").first().click();
      await alice.page.getByRole("textbox", { name: "Message" }).fill("Sent during the outage");
      await alice.page.getByRole("textbox", { name: "Message" }).press("Enter");
      await eventually(async () => assert.equal((await alice.page.locator(".messages .message.mine .text").allTextContents()).at(-1), "Sent during the outage"));
      await stack.startNotification();
      send({ recipient_ids: ["bob"], category: "build", content: "Build 5 passed after restart", link: "" });
      await live(page);
      await eventually(async () => {
        const items = await inboxItems(page);
        assert.equal(items.filter((t) => t === "alice: Sent during the outage").length, 1);
        assert.equal(items.filter((t) => t === "Build 5 passed after restart").length, 1);
      }, 20_000);
      // And nothing turns up twice a moment later either (a replay and a reload both ran).
      await new Promise((r) => setTimeout(r, 1000));
      const items = await inboxItems(page);
      assert.equal(new Set(items).size, items.length, `duplicates in ${JSON.stringify(items)}`);
    });

    it("an expired token leads to the sign-in prompt, not a retry loop", async () => {
      const carol = await openAs(browser, stack.url, shortToken(stack.jwtSecret, "carol", 3));
      await new Promise((r) => setTimeout(r, 3500));
      await goto(carol, "messages");
      await carol.page.getByRole("heading", { name: "Switchboard" }).waitFor();
      assert.match(await text(carol.page.locator(".sign-in-reason")), /session has ended/);
      const calls = carol.subscribes;
      await stack.stopNotification();
      await stack.startNotification();
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(carol.subscribes, calls, "the signed-out page keeps no stream");
      await carol.context.close();
    });

    it("works at 375 px wide", async () => {
      const phone = await openAs(browser, stack.url, stack.token("bob"), PHONE);
      const page = phone.page;
      await eventually(async () => assert.ok((await inboxItems(page)).length > 0));
      const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(scrollWidth <= PHONE.width, `the page is ${scrollWidth} px wide, wider than the screen`);
      await page.screenshot({ path: join(shots, "inbox-375.png") });
      await goto(phone, "messages");
      await page.locator(".conversations .conversation a").first().click();
      await eventually(async () => assert.ok((await page.locator(".messages .message").count()) > 0));
      assert.equal(await page.locator(".conversation-list").isVisible(), false);
      await eventually(async () => assert.equal(await text(page.locator("header.top nav a[data-route=messages] .badge")), ""));
      await page.screenshot({ path: join(shots, "messenger-375.png") });
      await page.getByRole("link", { name: "‹ Messages" }).click();
      await page.locator(".conversation-list").waitFor();
      assertNoErrors(phone);
      await phone.context.close();
    });

    it("logged no script or CSP errors", () => {
      assertNoErrors(alice);
      assertNoErrors(bob);
      void DESKTOP;
    });
  });
}
