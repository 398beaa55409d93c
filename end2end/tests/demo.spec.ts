import { test, expect } from "@playwright/test";
import { expectHydrated, expectLive, message, metric, openRoom, pageErrors, post, setOnHome, signedIn, uniqueName } from "./helpers";

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

test("a message posted by A appears live for B, highlighted only for the mentioned user", async ({ browser }) => {
  const [a, b, c] = [uniqueName("a"), uniqueName("b"), uniqueName("c")];
  const pageA = await signedIn(browser, a);
  const pageB = await signedIn(browser, b);
  const pageC = await signedIn(browser, c);
  for (const page of [pageA, pageB, pageC]) await openRoom(page, 1);

  const text = `hello @${b} ${Date.now()}`;
  await post(pageA, text);
  // B and C see it without reloading.
  await expect(message(pageB, text)).toBeVisible();
  await expect(message(pageC, text)).toBeVisible();
  await expect(message(pageA, text)).toHaveCount(1);
  // Only B is mentioned.
  await expect(message(pageB, text)).toHaveClass(/mention/);
  await expect(message(pageC, text)).not.toHaveClass(/mention/);
  await expect(message(pageA, text)).not.toHaveClass(/mention/);
});

test("the bell counts followed rooms, stays at zero when muted, and skips the author's own message", async ({ browser }) => {
  const [a, b, c] = [uniqueName("a"), uniqueName("b"), uniqueName("c")];
  const pageA = await signedIn(browser, a);
  const pageB = await signedIn(browser, b);
  const pageC = await signedIn(browser, c);
  // B follows #random; C follows it too but muted it. A follows it as well.
  await setOnHome(pageB, "random", "follow");
  await setOnHome(pageC, "random", "follow");
  await setOnHome(pageC, "random", "mute");
  await setOnHome(pageA, "random", "follow");
  // C watches #rust: what A posts there after #random arrives after it on C's one stream.
  await openRoom(pageC, 3);

  await openRoom(pageA, 2);
  await post(pageA, `for the bell ${Date.now()}`);
  await expect(pageB.locator(".bell-count")).toHaveText("1");

  await openRoom(pageA, 3);
  const later = `after the bell ${Date.now()}`;
  await post(pageA, later);
  await expect(message(pageC, later)).toBeVisible();
  await expect(pageC.locator(".bell-count")).toHaveText("0");

  // A's own tab never received its message: back home, its bell reads zero.
  await pageA.locator("header a").first().click();
  await expectLive(pageA);
  await expect(pageA.locator(".bell-count")).toHaveText("0");
});

test("closing B's page frees its listens", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"));
  // A room page listens on the room and on who is typing there: both must have landed.
  const listened = ["room", "typing"].map((t) => pageA.waitForResponse((r) => r.url().endsWith(`/api/listen_${t}`)));
  await openRoom(pageA, 1);
  await Promise.all(listened);
  const before = await metric(pageA, "notif_listens");
  const pageB = await signedIn(browser, uniqueName("b"));
  await openRoom(pageB, 1);
  await expect.poll(() => metric(pageA, "notif_listens")).toBe(before + 2); // the room and its typing
  await pageB.context().close();
  // The tab's state goes once its stream ended and its resume window passed.
  await expect.poll(() => metric(pageA, "notif_listens"), { timeout: 20_000 }).toBe(before);
});

test("frames the browser has are not kept for a resume", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"));
  const pageB = await signedIn(browser, uniqueName("b"));
  await openRoom(pageA, 1);
  await openRoom(pageB, 1);
  const text = `acknowledged @${Date.now()}`;
  await post(pageA, text);
  await expect(message(pageB, text)).toBeVisible();
  // The tabs keep the frame until Chromium answers a ping carrying its number (the heartbeat's,
  // every second here, once the socket is idle): then no tab keeps any.
  await expect.poll(() => metric(pageA, "notif_replay_frames"), { timeout: 20_000 }).toBe(0);
});

test("bad input gets a message on the page, not a crash", async ({ browser }) => {
  const page = await signedIn(browser, uniqueName("e"));
  await openRoom(page, 1);
  await post(page, "   ");
  await expect(page.locator(".post-error")).toHaveText("A message cannot be empty.");
  await post(page, "x".repeat(501));
  await expect(page.locator(".post-error")).toContainText("at most 500");
  await expectLive(page);

  await page.goto("/rooms/99");
  await expect(page.locator(".error").first()).toContainText("There is no room 99.");
  await page.goto("/rooms/abc");
  await expect(page.locator(".error")).toHaveText("There is no such room.");

  await page.goto("/");
  await expectLive(page); // hydrated: the button works
  await page.locator("button.sign-out").click();
  await expect(page.locator('input[name="name"]')).toBeVisible();
  await expectHydrated(page); // hydrated again after the reload, so the form goes through the app
  await expect(page.locator(".conn")).toHaveCount(0); // signed out: no stream
  await page.click('form.sign-in button[type="submit"]');
  await expect(page.locator(".error")).toHaveText("Enter a name to sign in.");
});

test("moving between rooms moves the listen; leaving the room page unlistens", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"));
  const pageB = await signedIn(browser, uniqueName("b"));
  await openRoom(pageA, 2);
  await openRoom(pageB, 1);
  // Tabs left by earlier sign-ins linger for their window: wait until none does.
  const lingering = async () => (await metric(pageA, "notif_tabs")) - (await metric(pageA, "notif_connected_tabs"));
  await expect.poll(lingering, { timeout: 20_000 }).toBe(0);
  const listens = await metric(pageA, "notif_listens");

  // Same page, same tab: the room changes, the listen follows the key.
  await pageB.locator("nav.room-links a", { hasText: "#random" }).click();
  await expect(pageB.locator("h1")).toHaveText("#random");
  const there = `in random ${Date.now()}`;
  await post(pageA, there);
  await expect(message(pageB, there)).toBeVisible();
  await expect.poll(() => metric(pageA, "notif_listens")).toBe(listens); // room 1 was unlistened

  // Leaving the room page (the tab stays open) unlistens.
  await pageB.locator("header a").first().click();
  await expect(pageB.locator("ul.rooms")).toBeVisible();
  await expect.poll(() => metric(pageA, "notif_listens")).toBe(listens - 2); // the room and its typing
});

test("leaving a room while its listen is still on the way unlistens it (the unlisten waits)", async ({ browser }) => {
  const pageB = await signedIn(browser, uniqueName("b"));
  const lingering = async () => (await metric(pageB, "notif_tabs")) - (await metric(pageB, "notif_connected_tabs"));
  await expect.poll(lingering, { timeout: 20_000 }).toBe(0);
  const listens = await metric(pageB, "notif_listens");
  // The listen is held back in the browser long enough for B to leave the room before it lands.
  await pageB.route("**/listen_room*", async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await route.continue();
  }, { times: 1 });
  const listened = pageB.waitForResponse("**/listen_room*");
  await pageB.click('a[href="/rooms/1"]');
  await expect(pageB.locator("h1")).toBeVisible();
  await pageB.locator("header a").first().click();
  await expect(pageB.locator("ul.rooms")).toBeVisible();
  expect((await listened).status()).toBe(200);
  // Unordered, the unlisten would have landed first and the late listen would stay for good.
  await expect.poll(() => metric(pageB, "notif_listens")).toBe(listens);
});
