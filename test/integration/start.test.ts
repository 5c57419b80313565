/**
 * `npm start` (README): a newcomer's first run. Starts scripts/start.mjs on a
 * free port, pastes the curl lines it prints (as fetch), opens the console URL
 * it prints with the key it prints, and stops it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
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
let output = "";

/** Waits (bounded) until the script's output matches `pattern`. */
async function printed(pattern: RegExp, ms = 20_000): Promise<RegExpExecArray> {
  const until = Date.now() + ms;
  for (;;) {
    const match = pattern.exec(output);
    if (match) return match;
    if (Date.now() > until) throw new Error(`nothing matching ${pattern} within ${ms} ms:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

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

  it("shows the relay: the printed notification curl line delivers to the local receiver, which verifies and prints it", async () => {
    const [, contentType, secret, file, url] = await printed(/curl -s -X POST -H "Content-Type: ([^"]+)" -H "X-Api-Key: ([^"]+)" --data-binary @(\S+) "([^"]+)"/);
    const res = await fetch(url!, { method: "POST", headers: { "Content-Type": contentType!, "X-Api-Key": secret! }, body: readFileSync(file!) });
    expect(res.status).toBe(200);
    await printed(/\[receiver\] verified delivery \(Standard Webhooks, webhook-id demo-1\): #1 http:\/\/127\.0\.0\.1:\d+\/fhir\/R4\/Patient\//);
    // The sample now holds the next event, so the same line posts event 2.
    expect(readFileSync(file!, "utf8")).toContain('"eventNumber": "2"');
    expect(output).not.toContain("REFUSED");
  }, 60_000);

  it("prints the console URL and the key to sign in with; the channel is on it", async () => {
    const [, consoleUrl, key] = await printed(/open (\S+) in a browser and sign in with the demo admin key: (\S+)/);
    const json = (await (await fetch(consoleUrl!, { headers: { "X-Api-Key": key! } })).json()) as {
      channels: Array<{ name: string; state: string; lastEventNumber: number; targets: Array<{ target: string }> }>;
    };
    const channel = json.channels.find((c) => c.name === "demo");
    expect(channel).toMatchObject({ state: "ok" });
    expect(channel!.targets).toHaveLength(1);
    expect(channel!.targets[0]!.target).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/deliveries$/);
    const page = await fetch(consoleUrl!, { headers: { "X-Api-Key": key!, Accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-channel="demo"');
  }, 30_000);
});
