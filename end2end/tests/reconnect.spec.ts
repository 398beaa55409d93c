import { test, expect, Page } from "@playwright/test";
import { expectLive, message, metric, openRoom, pageErrors, post, signedIn, uniqueName } from "./helpers";

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

async function twoInRoom(browser: import("@playwright/test").Browser): Promise<[Page, Page]> {
  const pageA = await signedIn(browser, uniqueName("a"));
  const pageB = await signedIn(browser, uniqueName("b"));
  await openRoom(pageA, 1);
  await openRoom(pageB, 1);
  return [pageA, pageB];
}

test("a short loss of network resumes: what was missed arrives, nothing starts over", async ({ browser }) => {
  const [pageA, pageB] = await twoInRoom(browser);
  await pageB.context().setOffline(true);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-state", "reconnecting");
  const during = `while B was away ${Date.now()}`;
  await post(pageA, during);
  await pageB.context().setOffline(false);
  await expectLive(pageB);
  await expect(message(pageB, during)).toBeVisible();
  await expect(pageB.locator(".conn")).toHaveAttribute("data-resets", "0");
  const after = `after B came back ${Date.now()}`;
  await post(pageA, after);
  await expect(message(pageB, after)).toBeVisible();
});

test("a loss longer than the resume window starts over: the tab listens again and refetches", async ({ browser }) => {
  const [pageA, pageB] = await twoInRoom(browser);
  // Tabs this test's sign-ins left behind linger for their window: wait until none does.
  const lingering = async () => (await metric(pageA, "notif_tabs")) - (await metric(pageA, "notif_connected_tabs"));
  await expect.poll(lingering, { timeout: 20_000 }).toBe(0);
  const tabs = await metric(pageA, "notif_tabs");
  await pageB.context().setOffline(true);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-state", "reconnecting");
  const during = `while B was gone for good ${Date.now()}`;
  await post(pageA, during);
  // The server forgets B's tab once its window (1 s in these tests) has passed.
  await expect.poll(() => metric(pageA, "notif_tabs"), { timeout: 20_000 }).toBe(tabs - 1);
  await expect.poll(lingering).toBe(0);
  await pageB.context().setOffline(false);
  await expectLive(pageB);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-resets", "1");
  await expect(message(pageB, during)).toBeVisible(); // from the refetched history
  const after = `after B started over ${Date.now()}`;
  await post(pageA, after);
  await expect(message(pageB, after)).toBeVisible(); // it listens again
});

test("a listen lost to the network is sent again once the stream is back", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"));
  const pageB = await signedIn(browser, uniqueName("b"));
  await openRoom(pageA, 1);
  // B's room page mounts and listens; that one call dies on the way, as on a flaky network.
  let aborted = 0;
  await pageB.route("**/listen_room*", async (route) => {
    aborted += 1;
    await route.abort("internetdisconnected");
  }, { times: 1 });
  await pageB.click('a[href="/rooms/1"]');
  await expect(pageB.locator("h1")).toBeVisible();
  await expect.poll(() => aborted).toBe(1);
  // A short drop: the tab resumes (no reset), and its hello retries the failed listen.
  await pageB.context().setOffline(true);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-state", "reconnecting");
  await pageB.context().setOffline(false);
  await expectLive(pageB);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-resets", "0");
  const text = `after the listen was retried ${Date.now()}`;
  await post(pageA, text);
  await expect(message(pageB, text)).toBeVisible();
});

test("a history read that failed is read again once the stream is back", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"));
  const pageB = await signedIn(browser, uniqueName("b"));
  await openRoom(pageA, 1);
  const before = `before B opened the room ${Date.now()}`;
  await post(pageA, before);
  await expect(message(pageA, before)).toBeVisible();
  // Every history read of B fails: the first, and the one its confirmed listen triggers.
  let failed = 0;
  await pageB.route("**/room_history*", async (route) => {
    failed += 1;
    await route.abort("internetdisconnected");
  });
  await pageB.click('a[href="/rooms/1"]');
  await expect(pageB.locator("p.error")).toContainText("server function");
  await expect.poll(() => failed).toBe(2);
  await pageB.unroute("**/room_history*");
  // Nothing else would read it again: the stream coming back does.
  await pageB.context().setOffline(true);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-state", "reconnecting");
  await pageB.context().setOffline(false);
  await expectLive(pageB);
  await expect(message(pageB, before)).toBeVisible();
  await expect(pageB.locator("p.error")).toHaveCount(0);
});
