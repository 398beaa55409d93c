import { test, expect } from "@playwright/test";
import { openRoom, pageErrors, signedIn, uniqueName } from "./helpers";

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

test("who is typing: B sees A typing for a few seconds, A never sees themself", async ({ browser }) => {
  const [a, b] = [uniqueName("a"), uniqueName("b")];
  const pageA = await signedIn(browser, a);
  const pageB = await signedIn(browser, b);
  await openRoom(pageA, 3);
  await openRoom(pageB, 3);
  // Every text A's own typing line ever shows.
  await pageA.evaluate(() => {
    const line = document.querySelector(".typing")!;
    const seen: string[] = ((window as any).typingSeen = []);
    new MutationObserver(() => seen.push(line.textContent ?? "")).observe(line, {
      childList: true, characterData: true, subtree: true,
    });
  });

  // A types without posting. B's listen on the room's typing may land just after A's first
  // keystrokes: type again (a new call goes out 2 s after the last) until B sees it.
  const typingB = pageB.locator(".typing");
  await expect(async () => {
    await pageA.locator('input[name="body"]').pressSequentially("hel");
    await expect(typingB).toHaveText(`${a} is typing…`, { timeout: 2_500 });
  }).toPass();
  const shown = Date.now();

  // Gone ~3 s after the last notification, nothing posted.
  await expect(typingB).toHaveText("", { timeout: 6_000 });
  expect(Date.now() - shown, "shown for a few seconds").toBeGreaterThan(2_000);

  await expect(pageA.locator(".typing")).toHaveText("");
  const seenByA: string[] = await pageA.evaluate(() => (window as any).typingSeen);
  expect(seenByA.filter((text) => text.trim() !== ""), "A never sees anyone typing").toEqual([]);
  await pageA.context().close();
  await pageB.context().close();
});
