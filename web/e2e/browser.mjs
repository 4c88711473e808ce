// Debian's chromium driven by playwright-core: nothing downloads a browser. Each launch
// gets a fresh temporary profile (Playwright's default).
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 740 };

/**
 * A person in their own browser context (own sessionStorage), signed in through the link
 * `devstack token --link` prints. Collects console errors (a CSP violation is one) and the
 * Subscribe calls the page makes.
 */
export async function openAs(browser, url, token, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, locale: "en-GB", timezoneId: "Europe/Berlin" });
  const page = await context.newPage();
  const person = { context, page, errors: [], subscribes: 0 };
  page.on("console", (message) => {
    if (message.type() === "error") person.errors.push(message.text());
  });
  page.on("pageerror", (error) => person.errors.push(String(error)));
  page.on("request", (request) => {
    if (request.url().endsWith("/switchboard.notification.v1.NotificationService/Subscribe")) person.subscribes += 1;
  });
  await page.goto(`${url}/#token=${token}`);
  await live(page);
  return person;
}

export async function live(page) {
  await page.locator('.live-status[data-state="live"]').waitFor({ timeout: 15_000 });
}

/** Retries `check` (which throws while it does not hold) for up to `ms`. */
export async function eventually(check, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function text(locator) {
  return ((await locator.textContent()) ?? "").trim();
}

/** The inbox rows' texts, in order. */
export async function inboxItems(page) {
  return page.locator(".notifications .notification .content").allTextContents();
}

export async function unreadTabCount(page) {
  return text(page.locator('.tabs [data-count="unread"]'));
}

export async function badge(page) {
  return text(page.locator("header.top nav a[data-route=inbox] .badge"));
}

export async function categoryCount(page, category) {
  return text(page.locator(`.categories a[data-category="${category}"] .count`));
}

export function assertNoErrors(person) {
  // A refused call is logged by the browser as a failed resource; CSP violations and script
  // errors are what must never appear.
  const serious = person.errors.filter((e) => !/Failed to load resource/.test(e));
  assert.deepEqual(serious, []);
}
