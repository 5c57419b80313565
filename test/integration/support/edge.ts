/**
 * Starts the real Worker (wrangler.toml, src/index.ts) in workerd through
 * wrangler's test harness, from Node, so its outbound fetches reach the
 * loopback peers. Each test file starts its own edge and closes it.
 */
import { createTestHarness } from "wrangler";

export interface Edge {
  /** The edge's base URL, with a trailing slash: `http://127.0.0.1:PORT/`. */
  url: string;
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** What the Worker logged (console.log / console.error) since start or `clearLogs()`. */
  logs(): string;
  clearLogs(): void;
  close(): Promise<void>;
}

/**
 * @param configPath another Worker's wrangler config, e.g. one whose `main`
 *   mounts the edge as a library; default the deployable edge's own
 */
export async function startEdge(vars: Record<string, string>, secrets: Record<string, string> = {}, configPath = "./wrangler.toml"): Promise<Edge> {
  const harness = createTestHarness({
    workers: [{ configPath, vars: { ALLOW_INSECURE_HTTP: "true", ...vars }, secrets }],
  });
  const { url } = await harness.listen();
  return {
    url: url.href,
    fetch: (path, init) => fetch(new URL(path, url), init),
    logs: () =>
      harness
        .getLogs()
        .map((l) => JSON.stringify(l))
        .join("\n"),
    clearLogs: () => harness.clearLogs(),
    close: () => harness.close(),
  };
}
