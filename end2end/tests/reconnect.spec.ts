import { test, expect } from "@playwright/test";
import { expectLive, message, openRoom, pageErrors, post, signedIn, uniqueName } from "./helpers";

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

test("after the network comes back the tab listens again by itself and catches up", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"));
  const pageB = await signedIn(browser, uniqueName("b"));
  await openRoom(pageA, 1);
  await openRoom(pageB, 1);

  await pageB.context().setOffline(true);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-state", "reconnecting");
  const during = `while B was away ${Date.now()}`;
  await post(pageA, during);
  await pageB.context().setOffline(false);
  await expectLive(pageB);
  // The server forgot B's tab (or it never heard of the new one): B re-listened and refetched.
  await expect(message(pageB, during)).toBeVisible();
  const after = `after B came back ${Date.now()}`;
  await post(pageA, after);
  await expect(message(pageB, after)).toBeVisible();
});
