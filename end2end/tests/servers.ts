import { ChildProcess, spawn } from "node:child_process";
import * as net from "node:net";
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
