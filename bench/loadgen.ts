/**
 * Load generators behind one interface: autocannon, from the lockfile (a
 * devDependency, so `npm ci` alone is enough), or wrk (Debian's `wrk`) when
 * it is on PATH, which costs less CPU per request and times in microseconds.
 * Each run is bounded in time and loopback only.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { spawn } from "node:child_process";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { hasCommand, TASKSET } from "./processes.ts";

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Connection, read, write errors and timeouts. */
  errors: number;
  /** Answers with a status of 400 or more (wrk) / outside 2xx (autocannon). */
  badStatus: number;
}

export interface LoadRun {
  url: string;
  headers: Record<string, string>;
  connections: number;
  seconds: number;
  /** Default GET; a body is sent with every request. */
  method?: "GET" | "POST" | undefined;
  body?: string | undefined;
  /**
   * A body per request instead of `body` (e.g. a notification with the next
   * event number); `tag` comes back to `answered` with the request's status.
   * Only autocannon sends these (wrk sends one body).
   */
  numbered?: { next(): { body: string; tag: number }; answered(tag: number, status: number): void } | undefined;
}

export interface LoadGenerator {
  name: string;
  version: string;
  /** How each run is started, for the report. */
  describe(run: LoadRun): string;
  run(run: LoadRun): Promise<LoadResult>;
}

export const AUTOCANNON_INSTALL = "npm install --save-exact -D autocannon@9.0.0";
const WRK_SCRIPT = fileURLToPath(new URL("./wrk-report.lua", import.meta.url));

function wrkArgs(run: LoadRun): string[] {
  const args = ["-t1", `-c${run.connections}`, `-d${run.seconds}s`, "--timeout", "10s", "-s", WRK_SCRIPT];
  for (const [k, v] of Object.entries(run.headers)) args.push("-H", `${k}: ${v}`);
  args.push(run.url);
  return args;
}

/** wrk with one thread, pinned to `core`; its Lua `done` hook prints the numbers as JSON. */
export function wrk(core: number | undefined): LoadGenerator {
  const version = (spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0] ?? "wrk").split(" Copyright")[0]!.trim();
  const command = (run: LoadRun) => (TASKSET && core !== undefined ? ["taskset", "-c", String(core), "wrk", ...wrkArgs(run)] : ["wrk", ...wrkArgs(run)]);
  return {
    name: "wrk",
    version,
    describe: (run) =>
      (run.method && run.method !== "GET" ? `WRK_METHOD=${run.method} ` : "") +
      (run.body !== undefined ? `WRK_BODY="$(cat body.json)" ` : "") +
      command(run)
        .map((a) => (a === WRK_SCRIPT ? "bench/wrk-report.lua" : /[\s:]/.test(a) ? `'${a}'` : a))
        .join(" "),
    run: (run) =>
      new Promise((resolve, reject) => {
        if (run.numbered) return reject(new Error("wrk sends one body; a row with a body per request runs with autocannon"));
        const [cmd, ...args] = command(run);
        // bench/wrk-report.lua reads the method and body from the environment (wrk takes one script).
        const env = { ...process.env, WRK_METHOD: run.method ?? "GET", ...(run.body !== undefined ? { WRK_BODY: run.body } : {}) };
        if (run.body === undefined) delete env.WRK_BODY;
        const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"], env });
        let out = "";
        child.stdout.on("data", (c: Buffer) => (out += String(c)));
        child.stderr.on("data", (c: Buffer) => (out += String(c)));
        // wrk stops itself after -d; this only guards against a hang.
        const guard = setTimeout(() => child.kill("SIGKILL"), (run.seconds + 20) * 1000);
        child.on("exit", (code) => {
          clearTimeout(guard);
          const line = /^WRKJSON (.*)$/m.exec(out);
          if (code !== 0 || !line) return reject(new Error(`wrk failed (${code}) on ${run.url}:\n${out}`));
          const r = JSON.parse(line[1]!) as Record<string, number>;
          const seconds = r.duration_us! / 1e6;
          resolve({
            requests: r.requests!,
            seconds,
            rps: r.requests! / seconds,
            p50Ms: r.p50_us! / 1000,
            p99Ms: r.p99_us! / 1000,
            errors: r.connect! + r.read! + r.write! + r.timeout!,
            badStatus: r.status!,
          });
        });
      }),
  };
}

interface AutocannonResult {
  requests: { total: number };
  duration: number;
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
/** autocannon's per-connection context, where a request's tag waits for its answer (pipelining 1). */
type ConnectionContext = { tag?: number };

/** autocannon, in this process (so on this process's core). */
export async function autocannon(): Promise<LoadGenerator> {
  let run: Autocannon;
  let version = "autocannon";
  try {
    const mod = (await import("autocannon" as string)) as { default: Autocannon };
    run = mod.default;
    const { createRequire } = await import("node:module");
    version = `autocannon ${(createRequire(import.meta.url)("autocannon/package.json") as { version: string }).version}`;
  } catch {
    throw new Error(
      `No load generator: autocannon (a devDependency) is not installed; run \`npm ci\`, or ${AUTOCANNON_INSTALL}.\n` +
        `Optional: apt-get install -y wrk (then BENCH_LOADGEN=wrk, or it is picked up when on PATH).`,
    );
  }
  return {
    name: "autocannon",
    version,
    describe: (r) =>
      `autocannon({ url: '${r.url}', connections: ${r.connections}, duration: ${r.seconds}${r.method ? `, method: '${r.method}'` : ""}${r.numbered ? ", a new body per request (the next event number)" : r.body !== undefined ? ", body" : ""} })`,
    async run(r) {
      const numbered = r.numbered;
      const perRequest = numbered
        ? {
            requests: [
              {
                setupRequest: (req: Record<string, unknown>, context: ConnectionContext) => {
                  const { body, tag } = numbered.next();
                  context.tag = tag;
                  return { ...req, body };
                },
                onResponse: (status: number, _body: unknown, context: ConnectionContext) => {
                  if (context.tag !== undefined) numbered.answered(context.tag, status);
                },
              },
            ],
          }
        : {};
      const result = await run({
        url: r.url,
        connections: r.connections,
        duration: r.seconds,
        headers: r.headers,
        pipelining: 1,
        timeout: 10,
        method: r.method ?? "GET",
        ...(r.body !== undefined && !numbered ? { body: r.body } : {}),
        ...perRequest,
      });
      return {
        requests: result.requests.total,
        seconds: result.duration,
        rps: result.requests.total / result.duration,
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        errors: result.errors + result.timeouts,
        badStatus: result.non2xx,
      };
    },
  };
}

/**
 * BENCH_LOADGEN=wrk|autocannon chooses; otherwise wrk when it is on PATH (it
 * measures with less noise), and autocannon, which `npm ci` always installs,
 * when it is not. Asking for wrk without it installed is an error that says so.
 */
export async function loadGenerator(core: number | undefined): Promise<LoadGenerator> {
  const wanted = process.env.BENCH_LOADGEN;
  if (wanted !== undefined && wanted !== "wrk" && wanted !== "autocannon") throw new Error(`BENCH_LOADGEN must be wrk or autocannon, not ${JSON.stringify(wanted)}`);
  if (wanted === "wrk") {
    if (!hasCommand("wrk")) throw new Error("BENCH_LOADGEN=wrk, but wrk is not on PATH (apt-get install -y wrk), or leave BENCH_LOADGEN unset to use autocannon");
    return wrk(core);
  }
  if (wanted === "autocannon" || !hasCommand("wrk")) return autocannon();
  return wrk(core);
}
