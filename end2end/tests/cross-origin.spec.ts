import { test, expect, Page } from "@playwright/test";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import { expectLive, message, openRoom, pageErrors, post, signedIn, uniqueName } from "./helpers";

// A page on another origin visited by a signed-in user tries to act as that user. It is served
// from the same host on another port: the same *site*, so Chromium sends the app's
// `SameSite=Lax` session cookie along and only the server's origin checks stand in the way.

const APP = process.env.BASE_URL ?? "http://127.0.0.1:3000";
let evil: http.Server;
let EVIL = "";

/** The other origin's page: opens the app's WebSocket and posts `text/plain` with `no-cors`,
 * reporting in `window.report`, and submits a plain form (the classic CSRF) into a frame. */
function evilPage(marker: string): string {
  return `<!doctype html>
<title>elsewhere</title>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="post" action="${APP}/api/follow" target="sink">
  <input name="room" value="1"><input name="on" value="true">
</form>
<script>
  window.report = {};
  const ws = new WebSocket("${APP.replace("http", "ws")}/notif/ws");
  ws.onmessage = (e) => { if (JSON.parse(e.data).event === "hello") window.report.ws ??= "hello"; };
  ws.onerror = () => { window.report.ws ??= "error"; };
  ws.onclose = () => { window.report.ws ??= "closed"; };
  fetch("${APP}/api/post", {
    method: "POST", mode: "no-cors", credentials: "include",
    headers: { "content-type": "text/plain" }, body: "room=1&body=${marker}",
  }).then(() => { window.report.post = "answered"; }, (e) => { window.report.post = "failed: " + e; });
  document.getElementById("f").submit();
</script>`;
}

test.beforeAll(async () => {
  evil = http.createServer((request, response) => {
    const marker = new URL(request.url ?? "/", "http://x").searchParams.get("marker") ?? "none";
    response.writeHead(200, { "content-type": "text/html" });
    response.end(evilPage(marker));
  });
  await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
  EVIL = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
});

test.afterAll(() => new Promise<void>((resolve) => evil.close(() => resolve())));

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic, hydration error or CSP violation in any page").toEqual([]);
});

test("another origin's posts and forms are refused with 403 and change nothing", async ({ browser }) => {
  const page = await signedIn(browser, uniqueName("v"));
  const marker = `forged${Date.now()}`;
  const elsewhere = await page.context().newPage();
  const refused = [
    elsewhere.waitForResponse((r) => r.url() === `${APP}/api/post`),
    elsewhere.waitForResponse((r) => r.url() === `${APP}/api/follow`),
  ];
  await elsewhere.goto(`${EVIL}/?marker=${marker}`);
  for (const response of await Promise.all(refused)) {
    expect(response.status(), response.url()).toBe(403);
  }
  await expect.poll(() => elsewhere.evaluate(() => (window as any).report.post)).toBe("answered");

  // The app's own API, as this user: nothing posted, nothing followed, still signed in.
  const history = await (await page.request.post("/api/room_history", { form: { room: "1" } })).text();
  expect(history).not.toContain(marker);
  expect(await (await page.request.post("/api/followed", { form: {} })).text()).toBe("[]");

  // The app's pages still work: live, posting, and markup in a message shown as text both in
  // the author's page and in another user's, where it arrives over the WebSocket.
  const other = await signedIn(browser, uniqueName("o"));
  await openRoom(page, 1);
  await openRoom(other, 1);
  await post(page, `<b>bold</b><img src=x onerror=alert(1)> ${marker}`);
  for (const p of [page, other]) {
    await expect(message(p, marker)).toContainText("<b>bold</b><img src=x onerror=alert(1)>");
    await expect(p.locator("li.message .body b, li.message .body img")).toHaveCount(0);
    await expectLive(p);
  }
});

test("another origin cannot open the user's notification WebSocket", async ({ browser }) => {
  const page = await signedIn(browser, uniqueName("w"));
  const elsewhere = await page.context().newPage();
  await elsewhere.goto(`${EVIL}/?marker=ws${Date.now()}`);
  await expect.poll(() => elsewhere.evaluate(() => (window as any).report.ws)).toBeDefined();
  expect(await elsewhere.evaluate(() => (window as any).report.ws), "the socket closed before any hello").not.toBe("hello");
  await expectLive(page);
});
