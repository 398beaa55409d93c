import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

// Servers a spec runs itself, beside the one `cargo leptos end-to-end` starts: the same debug
// build, serving the same site, on ports the system picks so that nothing else can answer there.

const root = path.resolve(__dirname, "../..");

/** `n` distinct ports nothing listens on now (the system's picks for port 0, held open together). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve) => {
      const server = net.createServer().listen(0, "127.0.0.1", () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** `http://127.0.0.1:<port>` for a port from `freePorts`. */
export function base(port: number): string {
  return `http://127.0.0.1:${port}`;
}

/** The demo server (`target/debug/server`, built by cargo-leptos just before) at `base`. */
export function startServer(base: string, env: Record<string, string>): ChildProcess {
  return spawn(path.join(root, "target/debug/server"), [], {
    cwd: root,
    stdio: "ignore",
    env: {
      ...process.env,
      LEPTOS_OUTPUT_NAME: "notif-demo",
      LEPTOS_SITE_ROOT: path.join(root, "target/site"),
      LEPTOS_SITE_PKG_DIR: "pkg",
      LEPTOS_SITE_ADDR: base.replace("http://", ""),
      ...env,
    },
  });
}

/** Whether a server answers `/metrics` at `base`. */
export async function answering(base: string): Promise<boolean> {
  try {
    return (await fetch(`${base}/metrics`)).ok;
  } catch {
    return false;
  }
}

/** Whether the node at `base` serves and reaches Redis (`notif_backplane_up 1`). */
export async function ready(base: string): Promise<boolean> {
  try {
    const response = await fetch(`${base}/metrics`);
    return response.ok && (await response.text()).split("\n").includes("notif_backplane_up 1");
  } catch {
    return false;
  }
}

/** Resolves once `child` accepts connections on `port`; rejects if it fails to start or exits
 * first, or after 30 s. */
async function accepting(child: ChildProcess, port: number, what: string, output = () => ""): Promise<void> {
  let failed: string | undefined;
  child.once("error", (error) => (failed = `${what} did not start: ${error.message} (scripts/setup installs it)`));
  child.once("exit", (code, signal) => (failed ??= `${what} exited (${code ?? signal}) before accepting connections on ${port}`));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (failed) throw new Error(`${failed}\n${output()}`);
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (connected) return;
    if (Date.now() > deadline) throw new Error(`${what} does not accept connections on ${port} after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A `redis-server` on `port` (nothing saved to disk), once it accepts connections. Fails, never
 * skips, when Redis is not installed. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const redis = spawn("redis-server", ["--port", `${port}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  await accepting(redis, port, "redis-server");
  return redis;
}

/** HAProxy on `front`, balancing over the nodes on `backends` round robin with every request on
 * its own: the configuration `scripts/cluster` runs (`scripts/cluster haproxy-config`), written
 * to a temporary directory. Resolves once it accepts connections; fails, never skips, when
 * HAProxy is not installed. Every response names its node in `x-served-by` (`node1`, ...). */
export async function startHaproxy(front: number, backends: number[]): Promise<ChildProcess> {
  const config = execFileSync(path.join(root, "scripts/cluster"), ["haproxy-config", `${front}`, ...backends.map(String)]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "notif-haproxy-"));
  const file = path.join(dir, "haproxy.cfg");
  fs.writeFileSync(file, config);
  const haproxy = spawn("haproxy", ["-f", file, "-db"], { stdio: ["ignore", "ignore", "pipe"] });
  // Its warnings (each node going down and up) stay out of the test's output, but say why it
  // did not start, if it did not.
  let output = "";
  haproxy.stderr?.on("data", (chunk) => (output = (output + chunk).slice(-4000)));
  await accepting(haproxy, front, "haproxy", () => output);
  fs.rmSync(dir, { recursive: true, force: true }); // read at start
  return haproxy;
}
