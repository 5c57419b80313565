/**
 * `npm start` (README): a newcomer's first run. Starts scripts/start.mjs on a
 * free port, pastes the curl line it prints (as fetch), and stops it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { afterAll, describe, expect, it } from "vitest";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

let child: ChildProcess | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once("exit", resolve));
    child.kill("SIGINT");
    await exited;
  }
});

describe("npm start", () => {
  it("serves the demo source end to end, and the printed curl line works as pasted", async () => {
    const port = await freePort();
    child = spawn(process.execPath, ["scripts/start.mjs"], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stderr!.on("data", () => {});
    const curl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no curl line within 45 s:\n${output}`)), 45_000);
      child!.stdout!.on("data", (chunk) => {
        output += String(chunk);
        const line = /curl -s -H "([^"]+)" "([^"]+)"/.exec(output);
        if (line) {
          clearTimeout(timer);
          resolve(line[0]);
        }
      });
      child!.once("exit", (code) => reject(new Error(`npm start exited early (${code}):\n${output}`)));
    });
    const [, header, url] = /curl -s -H "([^"]+)" "([^"]+)"/.exec(curl)!;
    const [name, value] = header!.split(": ");
    const res = await fetch(url!, { headers: { [name!]: value! } });
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as { resourceType: string; entry: unknown[]; link: Array<{ url: string }> };
    expect(bundle.resourceType).toBe("Bundle");
    expect(bundle.entry.length).toBeGreaterThan(0);
    for (const link of bundle.link) expect(link.url.startsWith(`http://127.0.0.1:${port}/demo/`)).toBe(true);
  }, 60_000);
});
