import { test, expect } from "@playwright/test";
import { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expectLive, message, pageErrors, signedIn, uniqueName, openRoom } from "./helpers";
import { answering, base, freePorts, startServer as start } from "./servers";

// A server of this test's own (the one cargo-leptos runs cannot be restarted from here), on a
// port of its own, with the same build and a database that survives the restart.
const db = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "notif-restart-")), "db.sqlite");
let BASE = "";

test.beforeAll(async () => {
  BASE = base((await freePorts(1))[0]);
});

function startServer(): ChildProcess {
  return start(BASE, { NOTIF_DB: db });
}

let server: ChildProcess | undefined;

test.afterEach(() => {
  server?.kill("SIGKILL");
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

test("a server restart: the tab says reconnecting, then starts over, listens again and reloads the history", async ({ browser }) => {
  server = startServer();
  await expect.poll(() => answering(BASE), { timeout: 30_000 }).toBe(true);
  const pageA = await signedIn(browser, uniqueName("a"), BASE);
  const pageB = await signedIn(browser, uniqueName("b"), BASE);
  await openRoom(pageA, 1);
  await openRoom(pageB, 1);

  const stopped = new Promise((resolve) => server!.once("exit", resolve));
  server.kill("SIGTERM"); // graceful: streams get a bye, then the process exits
  await stopped;
  await expect(pageB.locator(".conn")).toHaveAttribute("data-state", "reconnecting");

  server = startServer();
  await expect.poll(() => answering(BASE), { timeout: 30_000 }).toBe(true);
  const first = `right after the restart ${Date.now()}`;
  const posted = await pageA.request.post(`${BASE}/api/post`, { form: { room: "1", body: first } });
  expect(posted.status()).toBe(200);

  await expectLive(pageB);
  await expect(pageB.locator(".conn")).toHaveAttribute("data-resets", "1");
  await expect(message(pageB, first)).toBeVisible();
  await expectLive(pageA);
  const second = `once everyone is back ${Date.now()}`;
  await pageA.request.post(`${BASE}/api/post`, { form: { room: "1", body: second } });
  await expect(message(pageB, second)).toBeVisible();
});
