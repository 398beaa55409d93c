import { test, expect, Page } from "@playwright/test";
import { expectHydrated, expectLive, message, openRoom, pageErrors, post, uniqueName, watchErrors } from "./helpers";

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

// Browsers allow six HTTP/1.1 connections per host: with one SSE stream per tab the seventh
// tab's server function calls would hang. Eight tabs of one browser context, on plain HTTP/1.1.
test("eight tabs in one browser all stay live, all receive, all can post", async ({ browser }) => {
  const context = await browser.newContext();
  const first = await context.newPage();
  watchErrors(first);
  await first.goto("/");
  await expectHydrated(first);
  const name = uniqueName("m");
  await first.fill('input[name="name"]', name);
  await first.click('form.sign-in button[type="submit"]');
  await expect(first.locator(".who")).toHaveText(name);

  const tabs: Page[] = [first];
  for (let i = 1; i < 8; i++) {
    const page = await context.newPage();
    watchErrors(page);
    tabs.push(page);
  }
  for (const page of tabs) await openRoom(page, 1);

  for (let i = 0; i < tabs.length; i++) {
    const text = `tab ${i} says hi ${Date.now()}`;
    await post(tabs[i], text);
    // The author's tab shows it from the reply; every other tab receives it live.
    for (const page of tabs) await expect(message(page, text)).toBeVisible();
  }
  for (const page of tabs) await expectLive(page);
});
