import { test, expect, Page } from "@playwright/test";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expectLive, message, openRoom, pageErrors, post, signedIn, uniqueName, watchErrors } from "./helpers";
import { answering, base, freePorts, startServer } from "./servers";

// Two server processes of this test's own, sharing a redis-server and a SQLite file.
let NODE1 = "";
let NODE2 = "";
const processes: ChildProcess[] = [];

test.beforeAll(async () => {
  const [node1, node2, redisPort] = await freePorts(3);
  NODE1 = base(node1);
  NODE2 = base(node2);
  processes.push(spawn("redis-server", ["--port", `${redisPort}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" }));
  const db = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "notif-nodes-")), "db.sqlite");
  for (const node of [NODE1, NODE2]) {
    processes.push(startServer(node, { NOTIF_DB: db, NOTIF_REDIS_URL: `redis://127.0.0.1:${redisPort}` }));
    await expect.poll(() => answering(node), { timeout: 30_000 }).toBe(true);
  }
  // Node 1 creates the database; wait until node 2 reaches Redis too.
  for (const node of [NODE1, NODE2]) {
    await expect.poll(async () => (await (await fetch(`${node}/metrics`)).text()).includes("notif_backplane_up 1")).toBe(true);
  }
});

test.afterAll(() => {
  for (const child of processes) child.kill("SIGKILL");
});

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

test("A on node 1 posts, B on node 2 sees it live", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"), NODE1);
  const pageB = await signedIn(browser, uniqueName("b"), NODE2);
  await openRoom(pageA, 1);
  await openRoom(pageB, 1);
  const text = `across nodes @${Date.now()}`;
  await post(pageA, text);
  await expect(message(pageB, text)).toBeVisible();
});

test("A signs out on node 1: A's tabs on both nodes hear nothing after", async ({ browser }) => {
  const name = uniqueName("a");
  const onNode1 = await signedIn(browser, name, NODE1);
  // The same browser (cookies are per host, not per port): a second tab, on node 2.
  const onNode2 = await onNode1.context().newPage();
  watchErrors(onNode2);
  await onNode2.goto(`${NODE2}/`);
  await expect(onNode2.locator(".who")).toHaveText(name);
  await expectLive(onNode2);
  await openRoom(onNode1, 2);
  await onNode2.goto(`${NODE2}/rooms/2`);
  await expectLive(onNode2);
  const pageC = await signedIn(browser, uniqueName("c"), NODE2);
  await openRoom(pageC, 2);

  await onNode1.goto(`${NODE1}/`);
  await expectLive(onNode1); // hydrated: the button works
  await onNode1.locator("button.sign-out").click();
  // Node 2 ended A's tab there at once; it came back signed out and may not read the room.
  await expect(onNode2.locator(".error").first()).toHaveText("Sign in to read rooms.");
  const after = `after A left ${Date.now()}`;
  await post(pageC, after);
  await expect(message(pageC, after)).toBeVisible();
  await expect(message(onNode2, after)).toHaveCount(0);
});
