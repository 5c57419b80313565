/**
 * Runs the edge as built for deploy (`wrangler deploy --dry-run --outdir`)
 * in plain workerd, from a generated config, beside the bare pass-through
 * Worker in the same process: no `wrangler dev`, no Miniflare (whose
 * outbound interceptor Worker sits on every fetch and roughly halves a
 * proxy's req/s, which would flatter the edge's ratio to the bare Worker).
 *
 * Bindings follow wrangler.toml: its vars, the KV namespaces (served by an
 * in-memory KV Worker, bench/kv-worker.js), the Durable Object classes
 * (SQLite-backed per its migrations, on a fresh directory: workerd's in-memory
 * Durable Object storage has no SQL API, which the relay's ChannelObject needs).
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { createRequire } from "node:module";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { spawnPinned, waitForLine } from "./processes.ts";

/** The parts of wrangler's parsed config the bench binds. */
export interface WranglerConfigSubset {
  compatibility_date?: string | undefined;
  compatibility_flags?: string[] | undefined;
  vars?: Record<string, unknown> | undefined;
  kv_namespaces?: Array<{ binding: string }> | undefined;
  durable_objects?: { bindings?: Array<{ name: string; class_name: string; script_name?: string | undefined }> | undefined } | undefined;
  migrations?: Array<{ new_sqlite_classes?: string[] | undefined; new_classes?: string[] | undefined }> | undefined;
}

export interface WorkerdOptions {
  /** Where the dry-run build is (its .js modules are loaded, the entry `index.js` first). */
  edgeDir: string;
  /** Where the generated config is written (the config embeds modules by relative path). */
  configPath: string;
  /** A directory for the Durable Objects' SQLite files, emptied by startWorkerd (default: `do-storage` beside the config). */
  storageDir?: string | undefined;
  passthroughScript: string;
  kvScript: string;
  /** The contract's floor (bench/floor-worker.js) and its bindings, when the bench measures it. */
  floor?: { script: string; bindings: Record<string, string> } | undefined;
  wrangler: WranglerConfigSubset;
  /** Vars and secrets on top of wrangler.toml's vars. */
  edgeBindings: Record<string, string>;
  upstreamOrigin: string;
  core: number | undefined;
  /**
   * A second edge (`edge-limited`: the same build, its own Durable Object
   * keys) with these extra bindings, and service bindings (binding name to
   * entrypoint) on a limiter Worker (`script`) that stands in for Cloudflare's
   * Rate Limiting binding, which plain workerd does not have.
   */
  limitedEdge?: { script: string; bindings: Record<string, string>; services: Record<string, string> } | undefined;
  /** A second bare pass-through Worker (`passthrough-bulk`) to this origin (the Bulk Data server). */
  bulkOrigin?: string | undefined;
}

export interface Workerd {
  pid: number;
  /** Base URLs with a trailing slash. */
  edgeUrl: string;
  passthroughUrl: string;
  /** Present when the options asked for them. */
  floorUrl: string | undefined;
  limitedEdgeUrl: string | undefined;
  bulkPassthroughUrl: string | undefined;
  version: string;
}

/** Capnp text literal (its escapes are C's; JSON's are a subset for what we write). */
const str = (value: string): string => JSON.stringify(value);

function binding(name: string, value: unknown): string {
  return typeof value === "string" ? `(name = ${str(name)}, text = ${str(value)})` : `(name = ${str(name)}, json = ${str(JSON.stringify(value))})`;
}

const storageDirOf = (options: WorkerdOptions): string => options.storageDir ?? join(dirname(options.configPath), "do-storage");

/** The workerd config for the edge, the bare pass-through Worker, the KV service and, when asked, the floor Worker. */
export function workerdConfig(options: WorkerdOptions): string {
  const configDir = dirname(options.configPath);
  const w = options.wrangler;
  const modules = readdirSync(options.edgeDir)
    .filter((f) => f.endsWith(".js") || f.endsWith(".mjs"))
    .sort((a, b) => (a === "index.js" ? -1 : b === "index.js" ? 1 : a.localeCompare(b)))
    .map((f) => `(name = ${str(f)}, esModule = embed ${str(relative(configDir, join(options.edgeDir, f)))})`);
  const sqlite = new Set((w.migrations ?? []).flatMap((m) => m.new_sqlite_classes ?? []));
  const doBindings = (w.durable_objects?.bindings ?? []).filter((b) => !b.script_name);
  const classes = [...new Set(doBindings.map((b) => b.class_name))];
  const edgeBindings = (extra: Record<string, string>, keyPrefix: string, services: Record<string, string>) => {
    const list = [
      ...Object.entries({ ...(w.vars ?? {}), ...options.edgeBindings, ...extra }).map(([k, v]) => binding(k, v)),
      ...Object.entries(services).map(([k, entrypoint]) => `(name = ${str(k)}, service = (name = "ratelimit", entrypoint = ${str(entrypoint)}))`),
      ...(w.kv_namespaces ?? []).map((kv) => `(name = ${str(kv.binding)}, kvNamespace = "kv")`),
      ...doBindings.map((b) => `(name = ${str(b.name)}, durableObjectNamespace = ${str(b.class_name)})`),
    ];
    return `bindings = [ ${list.join(",\n    ")} ],
  durableObjectNamespaces = [ ${classes.map((c) => `(className = ${str(c)}, uniqueKey = ${str(`${keyPrefix}-${c}`)}, enableSql = ${sqlite.has(c)})`).join(", ")} ],`;
  };
  const compat = `compatibilityDate = ${str(w.compatibility_date ?? "2026-10-23")}`;
  const edgeWorker = (name: string, extra: Record<string, string>, keyPrefix: string, services: Record<string, string> = {}) => `const ${name} :Workerd.Worker = (
  modules = [ ${modules.join(", ")} ],
  ${compat},
  compatibilityFlags = [ ${(w.compatibility_flags ?? []).map(str).join(", ")} ],
  ${edgeBindings(extra, keyPrefix, services)}
  durableObjectStorage = (localDisk = "do-storage"),
  globalOutbound = "internet",
);`;
  const jsWorker = (name: string, script: string, bindings: Record<string, string>) => `const ${name} :Workerd.Worker = (
  modules = [ (name = ${str(basename(script))}, esModule = embed ${str(relative(configDir, script))}) ],
  ${compat},
  bindings = [ ${Object.entries(bindings).map(([k, v]) => binding(k, v)).join(", ")} ],
  globalOutbound = "internet",
);`;
  const workers: Array<{ name: string; definition: string }> = [
    { name: "edge", definition: edgeWorker("edge", {}, "fhir-edge") },
    { name: "passthrough", definition: jsWorker("passthrough", options.passthroughScript, { UPSTREAM_ORIGIN: options.upstreamOrigin }) },
  ];
  if (options.floor) workers.push({ name: "floor", definition: jsWorker("floor", options.floor.script, options.floor.bindings) });
  const limited = options.limitedEdge;
  if (limited) workers.push({ name: "edge-limited", definition: edgeWorker("edgeLimited", limited.bindings, "fhir-edge-limited", limited.services) });
  if (options.bulkOrigin) workers.push({ name: "passthrough-bulk", definition: jsWorker("passthroughBulk", options.passthroughScript, { UPSTREAM_ORIGIN: options.bulkOrigin }) });
  // Workers reached only through bindings: no socket.
  const internal: Array<{ name: string; definition: string }> = limited ? [{ name: "ratelimit", definition: jsWorker("ratelimit", limited.script, {}) }] : [];
  const ref = (name: string) => name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    ${[...workers, ...internal].map((x) => `(name = ${str(x.name)}, worker = .${ref(x.name)}),`).join("\n    ")}
    (name = "kv", worker = .kv),
    (name = "internet", network = (allow = ["public", "private", "local"])),
    (name = "do-storage", disk = (path = ${str(storageDirOf(options))}, writable = true)),
  ],
  sockets = [
    ${workers.map((x) => `(name = ${str(x.name)}, address = "127.0.0.1:0", http = (), service = ${str(x.name)})`).join(",\n    ")}
  ],
);
${[...workers, ...internal].map((x) => x.definition).join("\n")}
const kv :Workerd.Worker = (
  modules = [ (name = "kv-worker.js", esModule = embed ${str(relative(configDir, options.kvScript))}) ],
  ${compat},
);
`;
}

/** How many sockets the generated config listens on: one per Worker but the KV and limiter services. */
const socketCount = (options: WorkerdOptions): number => 2 + [options.floor, options.limitedEdge, options.bulkOrigin].filter(Boolean).length;

/** The workerd binary that wrangler itself runs (the `workerd` package beside it). */
export function workerdBinary(): string {
  const require = createRequire(import.meta.url);
  const wranglerDir = dirname(require.resolve("wrangler/package.json"));
  const fromWrangler = createRequire(join(wranglerDir, "package.json"));
  return join(dirname(fromWrangler.resolve("workerd/package.json")), "bin", "workerd");
}

/** Starts workerd pinned to `core`; resolves when both sockets listen. */
export async function startWorkerd(options: WorkerdOptions): Promise<Workerd> {
  rmSync(storageDirOf(options), { recursive: true, force: true });
  mkdirSync(storageDirOf(options), { recursive: true });
  writeFileSync(options.configPath, workerdConfig(options));
  const binary = workerdBinary();
  // BENCH_INSPECTOR=<port> opens workerd's inspector, for `node bench/profile.ts`.
  const inspector = process.env.BENCH_INSPECTOR ? [`--inspector-addr=127.0.0.1:${process.env.BENCH_INSPECTOR}`] : [];
  const child = spawnPinned(binary, ["serve", options.configPath, "--control-fd=3", ...inspector], options.core, {
    // stdout carries the Workers' console.log lines: discarded, as a deployed Worker's are when no one tails it.
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + String(chunk)).slice(-4000);
  });
  const ports = new Map<string, number>();
  const control = child.stdio[3] as NodeJS.ReadableStream;
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`workerd exited (${code}) before listening:\n${stderr}`))),
  );
  await Promise.race([
    waitForLine(
      control,
      (line) => {
        const event = JSON.parse(line) as { event: string; socket?: string; port?: number };
        if (event.event === "listen" && event.socket && event.port) ports.set(event.socket, event.port);
        return ports.size === socketCount(options) ? true : undefined;
      },
      20_000,
      "workerd",
    ),
    exited,
  ]);
  control.resume();
  const version = (await import("node:child_process")).spawnSync(binary, ["--version"], { encoding: "utf8" }).stdout.trim();
  return {
    pid: child.pid!,
    edgeUrl: `http://127.0.0.1:${ports.get("edge")}/`,
    passthroughUrl: `http://127.0.0.1:${ports.get("passthrough")}/`,
    floorUrl: ports.has("floor") ? `http://127.0.0.1:${ports.get("floor")}/` : undefined,
    limitedEdgeUrl: ports.has("edge-limited") ? `http://127.0.0.1:${ports.get("edge-limited")}/` : undefined,
    bulkPassthroughUrl: ports.has("passthrough-bulk") ? `http://127.0.0.1:${ports.get("passthrough-bulk")}/` : undefined,
    version: version.replace(/^workerd\s+/, ""),
  };
}
