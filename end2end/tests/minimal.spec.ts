import { test, expect } from "@playwright/test";
import { ChildProcess, spawn } from "node:child_process";
import * as path from "node:path";
import { answering, base, freePorts } from "./servers";

// examples/minimal, built by `cargo leptos build --project minimal` (scripts/test does), on a
// port of its own: a click in one tab updates the count in every open tab.
const root = path.resolve(__dirname, "../..");
let URL = "";
let server: ChildProcess;

test.beforeAll(async () => {
  const [port] = await freePorts(1);
  URL = base(port);
  server = spawn(path.join(root, "target/debug/minimal"), [], {
    cwd: root,
    stdio: "ignore",
    env: {
      ...process.env,
      LEPTOS_OUTPUT_NAME: "notif-demo",
      LEPTOS_SITE_ROOT: path.join(root, "target/site-minimal"),
      LEPTOS_SITE_PKG_DIR: "pkg",
      LEPTOS_SITE_ADDR: URL.replace("http://", ""),
    },
  });
  await expect.poll(async () => {
    try {
      return (await fetch(URL)).ok;
    } catch {
      return false;
    }
  }, { timeout: 30_000 }).toBe(true);
});

test.afterAll(() => {
  server?.kill("SIGKILL");
});

test("the minimal example: a click in one tab updates every open tab", async ({ browser }) => {
  const open = async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(URL);
    await expect(page.locator(".conn")).toHaveText("live");
    await expect(page.locator(".count")).toHaveText(/^\d+$/);
    return page;
  };
  const first = await open();
  const second = await open();
  const before = Number(await first.locator(".count").textContent());
  await first.locator("button.click").click();
  await expect(first.locator(".count")).toHaveText(String(before + 1));
  await expect(second.locator(".count")).toHaveText(String(before + 1));
  await second.locator("button.click").click();
  await expect(first.locator(".count")).toHaveText(String(before + 2));
});
