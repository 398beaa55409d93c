import { Browser, Page, expect } from "@playwright/test";

/** A unique user name per run, so runs against the same database do not collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

/** Panics, hydration errors and Content-Security-Policy violations seen in any page of the
 * current test (checked after each test). */
export const pageErrors: string[] = [];

export function watchErrors(page: Page) {
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && /panicked|hydration|Content Security Policy/i.test(text)) pageErrors.push(`${page.url()}: ${text}`);
  });
}

/** A fresh browser context signed in as `name`, on the home page, hydrated and live. */
export async function signedIn(browser: Browser, name: string, baseURL?: string): Promise<Page> {
  const context = await browser.newContext(baseURL ? { baseURL } : {});
  const page = await context.newPage();
  watchErrors(page);
  await page.goto("/");
  await expectHydrated(page);
  await page.fill('input[name="name"]', name);
  await page.click('form.sign-in button[type="submit"]');
  await expect(page.locator(".who")).toHaveText(name);
  await expectLive(page);
  return page;
}

/** Hydrated: buttons and forms go through the app. Signed-out pages have no stream to wait for. */
export async function expectHydrated(page: Page) {
  await expect(page.locator("main")).toHaveAttribute("data-hydrated", "true");
}

/** Hydrated, with the tab's stream open. */
export async function expectLive(page: Page) {
  await expect(page.locator(".conn")).toHaveAttribute("data-state", "live");
}

export async function openRoom(page: Page, room: number) {
  await page.goto(`/rooms/${room}`);
  await expectLive(page);
  await expect(page.locator("h1")).toBeVisible();
}

export async function post(page: Page, text: string) {
  await page.fill('input[name="body"]', text);
  await page.click('form.post button[type="submit"]');
}

export function message(page: Page, text: string) {
  return page.locator("li.message", { hasText: text });
}

export async function metric(page: Page, name: string): Promise<number> {
  const text = await (await page.request.get("/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name}`);
  return Number(line.split(" ")[1]);
}

/** Clicks the Follow (or Mute) button of `room` on the home page, if not already on. */
export async function setOnHome(page: Page, room: string, what: "follow" | "mute") {
  const row = page.locator(`li[data-room="${room}"]`);
  const button = row.locator(`button.${what}`);
  const on = what === "follow" ? "Unfollow" : "Unmute";
  if ((await button.textContent()) !== on) {
    await button.click();
    await expect(button).toHaveText(on);
  }
}
