import { test, expect, Page, WebSocket } from "@playwright/test";
import { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expectLive, message, openRoom, pageErrors, post, signedIn, uniqueName } from "./helpers";
import { base, freePorts, ready, startHaproxy, startRedis, startServer } from "./servers";

// Three nodes of this test's own behind HAProxy (round robin, every request on its own, as
// `scripts/cluster` runs them), sharing a redis-server and a SQLite file. Browsers talk to the
// balancer only: a tab's stream is on one node, its calls land on any.
let FRONT = "";
const NODES: string[] = [];
const nodes: ChildProcess[] = [];
const others: ChildProcess[] = [];
let env: Record<string, string> = {};

test.beforeAll(async () => {
  const [front, redisPort, ...ports] = await freePorts(5);
  FRONT = base(front);
  others.push(await startRedis(redisPort));
  const db = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "notif-cluster-")), "db.sqlite");
  env = {
    NOTIF_DB: db,
    NOTIF_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    // Not the 1 s window scripts/test gives its server (inherited from the environment): a
    // stopping node keeps its tabs for other nodes to take over for NOTIF_DRAIN_MS, at most that.
    NOTIF_RESUME_WINDOW_MS: "10000",
    NOTIF_DRAIN_MS: "3000",
    NOTIF_SHUTDOWN_MS: "5000",
  };
  for (const port of ports) {
    NODES.push(base(port));
    nodes.push(startServer(base(port), env));
  }
  for (const node of NODES) await expect.poll(() => ready(node), { timeout: 30_000 }).toBe(true);
  others.push(await startHaproxy(front, ports));
});

test.afterAll(() => {
  for (const child of [...nodes, ...others]) child.kill("SIGKILL");
});

test.afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "no panic or hydration error in any page").toEqual([]);
});

/** SIGTERM to node `i`; once it has exited, it starts again on its port and is waited for. */
async function restart(i: number) {
  const stopped = new Promise((resolve) => nodes[i].once("exit", resolve));
  nodes[i].kill("SIGTERM");
  await stopped;
  nodes[i] = startServer(NODES[i], env);
  await expect.poll(() => ready(NODES[i]), { timeout: 30_000 }).toBe(true);
}

/** The node (`node1`...) that answered each call of the server function `endpoint`, and its status. */
function calls(page: Page, endpoint: string): { node: string; status: number }[] {
  const seen: { node: string; status: number }[] = [];
  page.on("response", (response) => {
    if (new URL(response.url()).pathname === `/api/${endpoint}`) {
      seen.push({ node: response.headers()["x-served-by"] ?? "?", status: response.status() });
    }
  });
  return seen;
}

/** The body of every room notification the page's streams receive (every connection, in order);
 * the room's presence frames (`presence` where a notification has `message`) are not counted. */
function notifications(page: Page): string[] {
  const bodies: string[] = [];
  page.on("websocket", (socket: WebSocket) => {
    socket.on("framereceived", ({ payload }) => {
      const frame = JSON.parse(payload.toString());
      if (frame.event === "notif" && frame.data.topic === "room" && "message" in frame.data) {
        bodies.push(frame.data.message.message.body);
      }
    });
  });
  return bodies;
}

test("two users through the balancer: listens and posts land on any node, every message arrives once", async ({ browser }) => {
  const pageA = await signedIn(browser, uniqueName("a"), FRONT);
  const pageB = await signedIn(browser, uniqueName("b"), FRONT);
  // A room page listens on the room and on who is typing there.
  const listensA = [calls(pageA, "listen_room"), calls(pageA, "listen_typing")];
  const listensB = [calls(pageB, "listen_room"), calls(pageB, "listen_typing")];
  const postsA = calls(pageA, "post");
  const postsB = calls(pageB, "post");
  const receivedA = notifications(pageA);
  const receivedB = notifications(pageB);
  // Switching rooms unlistens one and listens the next: calls land on every node.
  for (const room of [2, 3, 1]) {
    await openRoom(pageA, room);
    await openRoom(pageB, room);
  }
  const tag = Date.now().toString(36);
  const texts: string[] = [];
  for (let i = 1; i <= 3; i++) {
    for (const [who, page] of [["A", pageA], ["B", pageB]] as const) {
      const text = `${tag}-${who}-${i}-end`;
      texts.push(text);
      await post(page, text);
      await expect(message(page, text)).toHaveCount(1);
    }
  }
  const listens = [...listensA, ...listensB].flat();
  expect(listens.filter((c) => c.status !== 200), "every node takes every listen").toEqual([]);
  // Round robin spreads every request, page loads included, so which node takes a given listen
  // varies: they land on several (server/tests/balancer.rs checks all three, calls alone).
  expect(new Set(listens.map((c) => c.node)).size, `listens on several nodes: ${JSON.stringify(listens)}`).toBeGreaterThanOrEqual(2);
  for (const page of [pageA, pageB]) {
    for (const text of texts) await expect(message(page, text)).toHaveCount(1);
  }
  const posts = [...postsA, ...postsB];
  expect(posts.filter((c) => c.status !== 200)).toEqual([]);
  expect(new Set(posts.map((c) => c.node)).size, `posts on several nodes: ${JSON.stringify(posts)}`).toBeGreaterThanOrEqual(2);
  // Each stream got the other user's messages once each (a tab's own come with its post's reply).
  // Sorted: posts taken by different nodes may arrive in either order (each node publishes on
  // its own connection to Redis); the Rust balancer tests check the order per node.
  const sorted = (list: string[]) => [...list].sort();
  expect(sorted(receivedA.filter((b) => b.startsWith(tag) && b.includes("-B-")))).toEqual(sorted(texts.filter((t) => t.includes("-B-"))));
  expect(sorted(receivedB.filter((b) => b.startsWith(tag) && b.includes("-A-")))).toEqual(sorted(texts.filter((t) => t.includes("-A-"))));
  for (const page of [pageA, pageB]) await expect(page.locator(".conn")).toHaveAttribute("data-resets", "0");
});

test("a rolling restart of every node while both users post: every message once, no reset", async ({ browser }) => {
  test.setTimeout(120_000);
  const pageA = await signedIn(browser, uniqueName("a"), FRONT);
  const pageB = await signedIn(browser, uniqueName("b"), FRONT);
  const receivedA = notifications(pageA);
  const receivedB = notifications(pageB);
  await openRoom(pageA, 2);
  await openRoom(pageB, 2);

  const tag = Date.now().toString(36);
  const texts: Record<"A" | "B", string[]> = { A: [], B: [] };
  let rolling = true;
  // Each user posts, waits for the message to show on their own page, and posts again.
  const poster = async (who: "A" | "B", page: Page) => {
    for (let i = 1; rolling; i++) {
      const text = `${tag}-${who}-${String(i).padStart(3, "0")}-end`;
      texts[who].push(text);
      await post(page, text);
      await expect(message(page, text)).toHaveCount(1, { timeout: 20_000 });
    }
  };
  const posting = Promise.all([poster("A", pageA), poster("B", pageB)]);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  for (let i = 0; i < nodes.length; i++) {
    await restart(i);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  rolling = false;
  await posting;

  const all = [...texts.A, ...texts.B];
  expect(texts.A.length, "A posted during the whole restart").toBeGreaterThan(5);
  for (const page of [pageA, pageB]) {
    await expectLive(page);
    await expect(page.locator(".conn"), "no tab started over").toHaveAttribute("data-resets", "0");
  }
  for (const page of [pageA, pageB]) {
    for (const text of all) await expect(message(page, text), text).toHaveCount(1);
  }
  // What each stream carried, across its reconnections: the other user's messages, once each
  // (in any order between the nodes that took the posts; the texts sort in posting order).
  expect(receivedA.filter((b) => b.startsWith(`${tag}-B-`)).sort()).toEqual(texts.B);
  expect(receivedB.filter((b) => b.startsWith(`${tag}-A-`)).sort()).toEqual(texts.A);
});
