import { afterEach, describe, expect, it, vi } from "vitest";
import { createEdge } from "../../../src/app.ts";
import type { ForwardDeps } from "../../../src/upstream/forward.ts";

/** An upstream stand-in recording what the edge sent; the real-server tests live in test/integration. */
function recorder(answer: (req: Request, n: number) => Response | Promise<Response>) {
  const seen: Request[] = [];
  const waits: number[] = [];
  // A waiting retry moves the clock, as a real one would: a Retry-After hold has passed when it wakes.
  let clock = Date.now();
  const deps: Partial<ForwardDeps> = {
    now: () => clock,
    fetch: async (req) => {
      seen.push(req);
      return answer(req, seen.length);
    },
    sleep: async (ms) => {
      waits.push(ms);
      clock += ms;
    },
    random: () => 0.5,
  };
  return { seen, waits, deps };
}

const ENV = {
  PROXY_API_KEYS: "app:app-key-1,ops:ops-key-2",
  PROXY_ADMIN_CLIENTS: "ops",
  FHIR_SOURCE_EHR: "fhir://ehr.example/fhir/R4?token=UPSTREAM-TOKEN-XYZ&header.X-Tenant=t1&retry_backoff_factor=0.2",
  FHIR_SOURCE_BROKEN: "fhir://broken.example/r4?max_attempts=zero",
};
const KEY = { Authorization: "Bearer app-key-1" };
const ok = () => new Response('{"resourceType":"Patient","id":"1"}', { headers: { "Content-Type": "application/fhir+json" } });

async function call(path: string, init: RequestInit = {}, deps: Partial<ForwardDeps> = {}, env: Record<string, unknown> = ENV) {
  const app = createEdge({ deps });
  return app.request(`https://edge.example${path}`, init, env);
}

async function outcome(res: Response) {
  expect(res.headers.get("Content-Type")).toContain("application/fhir+json");
  const body = (await res.json()) as { resourceType: string; issue: Array<{ code: string; diagnostics: string; details: { coding: Array<{ code: string }> }; expression?: string[] }> };
  expect(body.resourceType).toBe("OperationOutcome");
  const issue = body.issue[0]!;
  return { code: issue.code, errorCode: issue.details.coding[0]!.code, diagnostics: issue.diagnostics, expression: issue.expression };
}

describe("2. who may call the edge (api-key)", () => {
  it("refuses a request without credentials: 401, WWW-Authenticate, OperationOutcome, nothing upstream", async () => {
    const up = recorder(ok);
    const res = await call("/ehr/Patient/1", {}, up.deps);
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
    expect(await outcome(res)).toMatchObject({ code: "login", errorCode: "missing-credentials" });
    expect(up.seen).toHaveLength(0);
  });

  it("refuses a wrong key with 401 invalid-credentials", async () => {
    const res = await call("/ehr/Patient/1", { headers: { "X-Api-Key": "app-key-2" } });
    expect(res.status).toBe(401);
    expect(await outcome(res)).toMatchObject({ code: "login", errorCode: "invalid-credentials" });
  });

  it("accepts the key as Authorization: Bearer or X-Api-Key, and forwards neither", async () => {
    for (const headers of [KEY, { "X-Api-Key": "app-key-1" }]) {
      const up = recorder(ok);
      const res = await call("/ehr/Patient/1", { headers }, up.deps);
      expect(res.status).toBe(200);
      const sent = up.seen[0]!;
      expect(sent.headers.get("Authorization")).toBe("Bearer UPSTREAM-TOKEN-XYZ");
      expect(sent.headers.get("X-Api-Key")).toBeNull();
    }
  });

  it("fails closed when PROXY_AUTH is unknown", async () => {
    const res = await call("/ehr/Patient/1", { headers: KEY }, {}, { ...ENV, PROXY_AUTH: "sometimes" });
    expect(res.status).toBe(500);
    expect(await outcome(res)).toMatchObject({ errorCode: "auth-misconfigured" });
  });

  it("with PROXY_AUTH=none, needs no credentials", async () => {
    const up = recorder(ok);
    const res = await call("/ehr/Patient/1", {}, up.deps, { ...ENV, PROXY_AUTH: "none" });
    expect(res.status).toBe(200);
  });

  it("admin routes only for PROXY_ADMIN_CLIENTS", async () => {
    expect((await call("/status", { headers: KEY })).status).toBe(403);
    // /status probes each source's metadata: a stand-in upstream keeps the test off the network.
    const res = await call("/status", { headers: { Authorization: "Bearer ops-key-2" } }, recorder(ok).deps);
    expect(res.status).toBe(200);
    const status = (await res.json()) as { sources: Array<{ name: string; state: string }>; configurationErrors: Array<{ subject: string; field: string }> };
    expect(status.sources.map((s) => [s.name, s.state])).toEqual([
      ["broken", "misconfigured"],
      ["ehr", "ok"],
    ]);
    expect(status.configurationErrors).toContainEqual(expect.objectContaining({ subject: "broken", field: "max_attempts" }));
    expect(JSON.stringify(status)).not.toContain("UPSTREAM-TOKEN-XYZ");
  });
});

describe("3. errors are OperationOutcomes with the request id", () => {
  it("unknown source: 404 not-found", async () => {
    const res = await call("/nope/Patient", { headers: KEY });
    expect(res.status).toBe(404);
    expect(await outcome(res)).toMatchObject({ code: "not-found", errorCode: "source-not-found" });
  });

  it("a misconfigured source: 500 naming the source and field, never the value; others keep working", async () => {
    const res = await call("/broken/Patient", { headers: KEY });
    expect(res.status).toBe(500);
    const o = await outcome(res);
    expect(o).toMatchObject({ code: "exception", errorCode: "source-misconfigured", expression: ["max_attempts"] });
    expect(o.diagnostics).toContain("broken");
    expect(o.diagnostics).toContain("max_attempts");
    expect(o.diagnostics).not.toContain("zero");
    expect((await call("/ehr/Patient/1", { headers: KEY }, recorder(ok).deps)).status).toBe(200);
  });

  it("methods other than GET, HEAD, POST, PUT, PATCH, DELETE: 405 with Allow", async () => {
    const res = await call("/ehr/Patient", { method: "OPTIONS", headers: KEY });
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("GET, HEAD, POST, PUT, PATCH, DELETE");
    expect(await outcome(res)).toMatchObject({ code: "not-supported" });
  });

  it("keeps the client's X-Request-Id, or makes one, on every response and in the outcome", async () => {
    const mine = await call("/nope/x", { headers: { ...KEY, "X-Request-Id": "req-abc.123" } });
    expect(mine.headers.get("X-Request-Id")).toBe("req-abc.123");
    expect((await outcome(mine)).diagnostics).toContain("req-abc.123");
    const made = await call("/nope/x", { headers: KEY });
    expect(made.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
    const weird = await call("/nope/x", { headers: { ...KEY, "X-Request-Id": "<script>" } });
    expect(weird.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
    // Answers the edge builds itself (not errors, not proxied) carry it too.
    const statement = await call("/metadata", { headers: { "X-Request-Id": "req-meta-1" } });
    expect(statement.status).toBe(200);
    expect(statement.headers.get("X-Request-Id")).toBe("req-meta-1");
  });

  it("an unsafe path: 400 invalid, nothing upstream", async () => {
    const up = recorder(ok);
    for (const path of ["/ehr/..%2f..%2fadmin", "/ehr/Patient/%2e%2e%2fx", "/ehr//evil.example/x", "/ehr/https:%2F%2Fevil.example"]) {
      const res = await call(path, { headers: KEY }, up.deps);
      expect(res.status, path).toBe(400);
      expect(await outcome(res)).toMatchObject({ code: "invalid", errorCode: "unsafe-path" });
    }
    expect(up.seen).toHaveLength(0);
  });

  it("upstream unreachable: 502 transient after the retries", async () => {
    const up = recorder(() => {
      throw new TypeError("connect ECONNREFUSED");
    });
    const res = await call("/ehr/Patient/1", { headers: KEY }, up.deps);
    expect(res.status).toBe(502);
    expect(await outcome(res)).toMatchObject({ code: "transient", errorCode: "upstream-unreachable" });
    expect(up.seen).toHaveLength(5);
  });

  it("upstream timeout: 504 timeout", async () => {
    const up = recorder(
      (req) =>
        new Promise((_, reject) => {
          req.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
        }),
    );
    const res = await call("/ehr/Patient/1", { headers: KEY }, up.deps, { ...ENV, FHIR_SOURCE_EHR: "fhir://ehr.example/fhir/R4?timeout=0.05&max_attempts=2" });
    expect(res.status).toBe(504);
    expect(await outcome(res)).toMatchObject({ code: "timeout", errorCode: "upstream-timeout" });
    expect(up.seen).toHaveLength(2);
  });

  it("an upstream 401 becomes a 502 naming the source: the client's own key was fine", async () => {
    const res = await call("/ehr/Patient/1", { headers: KEY }, recorder(() => new Response("no", { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="ehr"' } })).deps);
    expect(res.status).toBe(502);
    expect(res.headers.get("WWW-Authenticate")).toBeNull();
    expect(await outcome(res)).toMatchObject({ errorCode: "upstream-unauthorized" });
  });
});

describe("3. forwarding", () => {
  it("sends the path and query byte for byte, the source's headers, and no hop-by-hop or edge credentials", async () => {
    const up = recorder(ok);
    await call(
      "/ehr/Patient?name=J%C3%B6rg&birthdate=ge1970-01-01&_include=Patient:organization&x=a+b",
      { headers: { ...KEY, Connection: "keep-alive, X-Drop", "X-Drop": "1", "Keep-Alive": "5", Prefer: "return=minimal", Cookie: "edge=1" } },
      up.deps,
    );
    const sent = up.seen[0]!;
    expect(sent.url).toBe("https://ehr.example/fhir/R4/Patient?name=J%C3%B6rg&birthdate=ge1970-01-01&_include=Patient:organization&x=a+b");
    expect(sent.headers.get("X-Tenant")).toBe("t1");
    expect(sent.headers.get("Prefer")).toBe("return=minimal");
    for (const h of ["Connection", "X-Drop", "Keep-Alive", "Cookie", "X-Api-Key"]) expect(sent.headers.get(h), h).toBeNull();
    expect(sent.headers.get("X-Request-Id")).toBeTruthy();
    expect(sent.redirect).toBe("manual");
  });

  it("returns status, body and FHIR headers; drops hop-by-hop, cookies and anything echoing the upstream credential", async () => {
    const up = recorder(
      () =>
        new Response('{"resourceType":"Patient","id":"1"}', {
          status: 200,
          headers: {
            "Content-Type": "application/fhir+json",
            ETag: 'W/"3"',
            "Last-Modified": "Sat, 21 Nov 2026 10:00:00 GMT",
            "Content-Location": "https://ehr.example/fhir/R4/Patient/1/_history/3",
            "Set-Cookie": "session=upstream",
            "Keep-Alive": "timeout=5",
            "X-Debug-Auth": "Bearer UPSTREAM-TOKEN-XYZ",
          },
        }),
    );
    const res = await call("/ehr/Patient/1", { headers: KEY }, up.deps);
    expect(res.status).toBe(200);
    expect(res.headers.get("ETag")).toBe('W/"3"');
    expect(res.headers.get("Last-Modified")).toBe("Sat, 21 Nov 2026 10:00:00 GMT");
    expect(res.headers.get("Content-Location")).toBe("https://edge.example/ehr/Patient/1/_history/3");
    for (const h of ["Set-Cookie", "Keep-Alive", "X-Debug-Auth"]) expect(res.headers.get(h), h).toBeNull();
    expect(await res.text()).toBe('{"resourceType":"Patient","id":"1"}');
  });

  it("rewrites a searchset to the edge's base, and honours PUBLIC_URL", async () => {
    const bundle = JSON.stringify({ resourceType: "Bundle", type: "searchset", link: [{ relation: "next", url: "https://ehr.example/fhir/R4/Patient?page=2" }] });
    const answer = () => new Response(bundle, { headers: { "Content-Type": "application/fhir+json" } });
    const res = await call("/ehr/Patient", { headers: KEY }, recorder(answer).deps);
    expect(((await res.json()) as { link: Array<{ url: string }> }).link[0]!.url).toBe("https://edge.example/ehr/Patient?page=2");
    const pub = await call("/ehr/Patient", { headers: KEY }, recorder(answer).deps, { ...ENV, PUBLIC_URL: "https://fhir.example.org/v1/" });
    expect(((await pub.json()) as { link: Array<{ url: string }> }).link[0]!.url).toBe("https://fhir.example.org/v1/ehr/Patient?page=2");
  });

  it("streams a single-resource body through untouched, unless rewrite_bodies=all", async () => {
    const body = '{"resourceType":"Patient","id":"1","link":[{"other":{"reference":"https://ehr.example/fhir/R4/Patient/2"}}]}';
    const answer = () => new Response(body, { headers: { "Content-Type": "application/fhir+json" } });
    expect(await (await call("/ehr/Patient/1", { headers: KEY }, recorder(answer).deps)).text()).toBe(body);
    const all = await call("/ehr/Patient/1", { headers: KEY }, recorder(answer).deps, { ...ENV, FHIR_SOURCE_EHR: "fhir://ehr.example/fhir/R4?rewrite_bodies=all" });
    expect(await all.text()).toContain("https://edge.example/ehr/Patient/2");
  });
});

describe("3. retries", () => {
  it("retries 503 with backoff and full jitter, then returns the success", async () => {
    const up = recorder((_, n) => (n < 3 ? new Response("busy", { status: 503 }) : ok()));
    const res = await call("/ehr/Patient/1", { headers: KEY }, up.deps);
    expect(res.status).toBe(200);
    expect(up.seen).toHaveLength(3);
    // random() = 0.5, factor 0.2 s: 0.5 * 0.2 s, then 0.5 * 0.4 s
    expect(up.waits).toEqual([100, 200]);
  });

  it("honours Retry-After", async () => {
    const up = recorder((_, n) => (n === 1 ? new Response("slow down", { status: 429, headers: { "Retry-After": "2" } }) : ok()));
    await call("/ehr/Patient/1", { headers: KEY }, up.deps);
    expect(up.waits).toEqual([2000]);
  });

  it("stops at max_attempts and returns the upstream's last answer", async () => {
    const up = recorder(() => new Response('{"resourceType":"OperationOutcome"}', { status: 503, headers: { "Retry-After": "1" } }));
    const res = await call("/ehr/Patient/1", { headers: KEY }, up.deps);
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("1");
    expect(up.seen).toHaveLength(5);
  });

  it("a client that disconnects ends the retries: no further attempt, logged as 499 request-abandoned", async () => {
    const controller = new AbortController();
    const up = recorder(() => {
      controller.abort();
      return new Response("busy", { status: 503 });
    });
    const res = await call("/ehr/Patient/1", { headers: KEY, signal: controller.signal }, up.deps);
    expect(res.status).toBe(499);
    expect((await outcome(res)).errorCode).toBe("request-abandoned");
    expect(up.seen).toHaveLength(1);
    expect(up.waits).toEqual([]);
  });

  it("never retries a plain POST, but retries a conditional create and sends the same body again", async () => {
    const plain = recorder(() => new Response("busy", { status: 503 }));
    const res = await call("/ehr/Patient", { method: "POST", headers: { ...KEY, "Content-Type": "application/fhir+json" }, body: '{"resourceType":"Patient"}' }, plain.deps);
    expect(res.status).toBe(503);
    expect(plain.seen).toHaveLength(1);

    const conditional = recorder((_, n) => (n === 1 ? new Response("busy", { status: 503 }) : new Response(null, { status: 201 })));
    const res2 = await call(
      "/ehr/Patient",
      { method: "POST", headers: { ...KEY, "Content-Type": "application/fhir+json", "If-None-Exist": "identifier=urn:x|1" }, body: '{"resourceType":"Patient"}' },
      conditional.deps,
    );
    expect(res2.status).toBe(201);
    expect(conditional.seen).toHaveLength(2);
    expect(await conditional.seen[1]!.text()).toBe('{"resourceType":"Patient"}');
  });
});

describe("3. logs", () => {
  afterEach(() => vi.restoreAllMocks());
  it("carry route shape, status, timing, source and request id; never a query, body, token or key", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
    await call(
      "/ehr/Patient/jane-doe?name=Jane&birthdate=1970-01-01",
      { method: "PUT", headers: { ...KEY, "X-Request-Id": "log-test-1" }, body: '{"resourceType":"Patient","name":[{"family":"Doe"}]}' },
      recorder(ok).deps,
    );
    const entry = JSON.parse(lines.find((l) => l.includes("log-test-1"))!);
    expect(entry).toMatchObject({ requestId: "log-test-1", method: "PUT", source: "ehr", route: "Patient/{id}", status: 200, attempts: 1 });
    expect(typeof entry.ms).toBe("number");
    const all = lines.join("\n");
    for (const secret of ["Jane", "jane-doe", "1970", "Doe", "UPSTREAM-TOKEN-XYZ", "app-key-1"]) expect(all).not.toContain(secret);
  });

  async function loggedIds(accessLog: string | undefined): Promise<string[]> {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
    const env = accessLog === undefined ? ENV : { ...ENV, ACCESS_LOG: accessLog };
    const flaky = recorder((_req, n) => (n === 1 ? new Response("busy", { status: 503 }) : ok())).deps;
    await call("/ehr/Patient/1", { headers: { ...KEY, "X-Request-Id": "log-ok" } }, recorder(ok).deps, env);
    await call("/ehr/Patient/1", { headers: { ...KEY, "X-Request-Id": "log-retried" } }, flaky, env);
    await call("/nowhere/Patient/1", { headers: { ...KEY, "X-Request-Id": "log-404" } }, recorder(ok).deps, env);
    await call("/ehr/Patient/1", { headers: { Authorization: "Bearer wrong", "X-Request-Id": "log-401" } }, recorder(ok).deps, env);
    vi.restoreAllMocks();
    return lines.map((l) => (JSON.parse(l) as { requestId: string }).requestId);
  }

  it("ACCESS_LOG picks the requests logged: all (the default), errors (4xx/5xx and retried), off", async () => {
    const every = ["log-ok", "log-retried", "log-404", "log-401"];
    expect(await loggedIds(undefined)).toEqual(every);
    expect(await loggedIds("all")).toEqual(every);
    expect(await loggedIds("errors")).toEqual(["log-retried", "log-404", "log-401"]);
    expect(await loggedIds("off")).toEqual([]);
  });

  it("a bad ACCESS_LOG logs everything and is reported in /status", async () => {
    expect(await loggedIds("verbose")).toEqual(["log-ok", "log-retried", "log-404", "log-401"]);
    const res = await call("/status", { headers: { Authorization: "Bearer ops-key-2" } }, {}, { ...ENV, ACCESS_LOG: "verbose" });
    const status = (await res.json()) as { accessLog: string; configurationErrors: Array<{ subject: string; code: string }> };
    expect(status.accessLog).toBe("all");
    expect(status.configurationErrors).toContainEqual(expect.objectContaining({ subject: "ACCESS_LOG", code: "invalid-value" }));
  });
});
