/**
 * "Using it as a library" (docs/contract.md#4-using-it-as-a-library): the package as `npm run
 * build` emits it, imported by another Worker that mounts the edge under
 * `/fhir` of its own hono app with a transform handler and a custom aggregate
 * handler, in workerd, in front of two real FHIR servers.
 */
import { execFile } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Patient } from "@medplum/fhirtypes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoObservations, demoPatients, startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startEdge, type Edge } from "./support/edge.ts";

const KEY = { "X-Api-Key": "lib-key-0123456789" };
const dir = join(".wrangler", "tmp", `library-${process.pid}`);

/** A user's Worker: plain JS importing the built package, as it would from node_modules/fhir-edge. */
const WORKER = `
import { Hono } from "hono";
import { createEdge } from "./dist/index.js";
export { ChannelObject, TokenCoordinator } from "./dist/index.js";

const app = new Hono();
app.get("/", (c) => c.text("my own app"));
app.route("/fhir", createEdge({
  transforms: {
    // Tag every Patient with the source it came from.
    Patient: (patient, { source }) => ({
      ...patient,
      meta: { ...patient.meta, tag: [...(patient.meta?.tag ?? []), { system: "urn:example:source", code: source }] },
    }),
  },
  aggregates: {
    // HealthChain's aggregate_vitals: one patient's vitals from every source.
    Observation: async (ctx) => {
      const results = await ctx.searchEach({ subject: "Patient/" + ctx.params.get("patient"), category: "vital-signs" });
      return {
        resourceType: "Bundle",
        type: "searchset",
        entry: results.flatMap((r) => r.ok ? (r.bundle.entry ?? []) : [{ resource: r.outcome, search: { mode: "outcome" } }]),
      };
    },
  },
}));
export default app;
`;

let east: FhirServer;
let west: FhirServer;
let edge: Edge;

function files(root: string): string[] {
  return readdirSync(root).flatMap((name) => (statSync(join(root, name)).isDirectory() ? files(join(root, name)) : [join(root, name)]));
}

beforeAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await promisify(execFile)(join("node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json", "--outDir", join(dir, "dist")]);
  writeFileSync(join(dir, "worker.js"), WORKER);
  const toml = readFileSync("wrangler.toml", "utf8").replace('name = "fhir-edge"', 'name = "my-app"').replace('main = "src/index.ts"', 'main = "worker.js"');
  writeFileSync(join(dir, "wrangler.toml"), toml);

  east = await startFhirServer();
  west = await startFhirServer({ basePath: "/baseR4", paging: "getpages" });
  const [p] = await east.seed(demoPatients(4));
  await east.seed(demoObservations([p as Patient], 2));
  await west.seed(demoPatients(3));
  await west.seed(demoObservations([p as Patient], 1));
  edge = await startEdge(
    {
      PROXY_API_KEYS: `lib:${KEY["X-Api-Key"]}`,
      FHIR_SOURCE_EAST: `fhir+http://${new URL(east.url).host}/fhir/R4`,
      FHIR_SOURCE_WEST: `fhir+http://${new URL(west.url).host}/baseR4`,
    },
    { AGGREGATE_CURSOR_SECRET: "library-cursor-secret-0123456789abcdef" },
    join(dir, "wrangler.toml"),
  );
}, 120_000);

afterAll(async () => {
  await edge?.close();
  await east?.close();
  await west?.close();
  rmSync(dir, { recursive: true, force: true });
});

const json = async <T>(path: string, headers: Record<string, string> = KEY) => (await (await edge.fetch(path, { headers })).json()) as T;
type Tagged = { id: string; meta?: { tag?: Array<{ code: string }> } };
type Page = { link: Array<{ relation: string; url: string }>; entry?: Array<{ fullUrl?: string; resource: Tagged & { resourceType: string }; search?: { mode: string } }> };

describe("4. npm run build: the package", () => {
  it("emits JS and .d.ts, with relative imports ending in .js", () => {
    const emitted = files(join(dir, "dist"));
    expect(emitted).toContain(join(dir, "dist", "index.js"));
    expect(emitted).toContain(join(dir, "dist", "index.d.ts"));
    for (const file of emitted.filter((f) => f.endsWith(".js"))) expect(readFileSync(file, "utf8"), file).not.toMatch(/from "\.{1,2}\/[^"]*\.ts"/);
  });
});

describe("4. mounted under /fhir of another hono app, from the built package", () => {
  it("serves the parent's own routes and the edge's, with the mount path in the edge's URLs", async () => {
    expect(await (await edge.fetch("/")).text()).toBe("my own app");
    const statement = await json<{ implementation: { url: string } }>("/fhir/metadata", {});
    expect(statement.implementation.url).toBe(`${edge.url}fhir`);
    const search = await json<Page>("/fhir/east/Patient?_count=2");
    for (const l of search.link) expect(l.url.startsWith(`${edge.url}fhir/east/`), l.url).toBe(true);
    expect(search.entry![0]!.fullUrl).toBe(`${edge.url}fhir/east/Patient/${search.entry![0]!.resource.id}`);
  });

  it("applies the transform handler to a read and to a search's entries", async () => {
    const read = await json<Tagged>("/fhir/west/Patient/demo-patient-1");
    expect(read.meta?.tag).toEqual([{ system: "urn:example:source", code: "west" }]);
    const search = await json<Page>("/fhir/east/Patient?_count=3");
    expect(search.entry!.map((e) => e.resource.meta?.tag?.[0]?.code)).toEqual(["east", "east", "east"]);
  });

  it("aggregates under the prefix: transformed entries, fullUrls and next links under /fhir, paged to the end", async () => {
    const seen: string[] = [];
    let url: string | undefined = `${edge.url}fhir/aggregate/Patient?_count=3`;
    while (url) {
      const page: Page = (await (await fetch(url, { headers: KEY })).json()) as Page;
      for (const e of page.entry ?? []) {
        expect(e.fullUrl!.startsWith(`${edge.url}fhir/`)).toBe(true);
        expect(e.resource.meta?.tag?.[0]?.code).toBe(e.fullUrl!.split("/").at(-3));
        seen.push(e.fullUrl!);
      }
      url = page.link.find((l) => l.relation === "next")?.url;
      if (url) expect(url.startsWith(`${edge.url}fhir/aggregate/Patient?_cursor=`)).toBe(true);
    }
    expect(new Set(seen).size).toBe(7);
  });

  it("runs a custom aggregate handler for its type", async () => {
    const bundle = await json<Page>("/fhir/aggregate/Observation?patient=demo-patient-1");
    expect(bundle.entry!.map((e) => e.fullUrl).sort()).toEqual([
      `${edge.url}fhir/east/Observation/demo-obs-demo-patient-1-1`,
      `${edge.url}fhir/east/Observation/demo-obs-demo-patient-1-2`,
      `${edge.url}fhir/west/Observation/demo-obs-demo-patient-1-1`,
    ]);
  });
});
