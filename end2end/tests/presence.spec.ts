import { test, expect, Page } from "@playwright/test";
import { openRoom, pageErrors, signedIn, uniqueName } from "./helpers";

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

/** `name` in the room page's list of who is in the room. */
function present(page: Page, name: string) {
  return page.locator("ul.present li", { hasText: new RegExp(`^${name}$`) });
}

test("who is in a room: each sees the other arrive, then leave the room and close the page", async ({ browser }) => {
  const [a, b] = [uniqueName("a"), uniqueName("b")];
  const pageA = await signedIn(browser, a);
  const pageB = await signedIn(browser, b);
  await openRoom(pageA, 2);
  await expect(present(pageA, a)).toBeVisible(); // the list sent after A's listen names A
  await expect(present(pageA, b)).toHaveCount(0);

  // B enters: the list B gets names A, and A sees B join.
  await openRoom(pageB, 2);
  await expect(present(pageB, a)).toBeVisible();
  await expect(present(pageB, b)).toBeVisible();
  await expect(present(pageA, b)).toBeVisible();

  // B goes to another room through the page's own links (same tab, still connected): it leaves
  // this one, and sees only the new room's people.
  await pageB.locator("nav.room-links a", { hasText: "#rust" }).click();
  await expect(pageB.locator("h1")).toHaveText("#rust");
  await expect(present(pageA, b)).toHaveCount(0);
  await expect(present(pageA, a)).toBeVisible();
  await expect(present(pageB, b)).toBeVisible();
  await expect(present(pageB, a)).toHaveCount(0);

  // B comes back, then closes the page: gone once its resume window has passed.
  await openRoom(pageB, 2);
  await expect(present(pageA, b)).toBeVisible();
  await expect(present(pageB, a)).toBeVisible();
  await pageB.context().close();
  await expect(present(pageA, b)).toHaveCount(0, { timeout: 20_000 });
  await expect(present(pageA, a)).toBeVisible();
});
