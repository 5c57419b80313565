import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";
import { DEFAULT_RETRY } from "../../../src/config/source.ts";

const source = (env: Record<string, unknown>, name: string) => readEdgeConfig(env).sources.get(name);
const issuesOf = (env: Record<string, unknown>, name: string) => readEdgeConfig(env).brokenSources.get(name) ?? [];

describe("1a. connection strings: FHIR_SOURCE_<NAME>", () => {
  it("names the source from the variable: upper-case to lower, _ to -", () => {
    const config = readEdgeConfig({ FHIR_SOURCE_EPIC_PROD: "fhir://ehr.example.org/api/FHIR/R4" });
    expect([...config.sources.keys()]).toEqual(["epic-prod"]);
    expect(config.sources.get("epic-prod")).toMatchObject({
      baseUrl: "https://ehr.example.org/api/FHIR/R4",
      origin: "https://ehr.example.org",
      basePath: "/api/FHIR/R4",
      auth: { kind: "none" },
      rewriteBodies: "bundles",
      timeoutMs: 30_000,
    });
  });

  it("keeps the query out of the base URL and applies the documented defaults", () => {
    const s = source({ FHIR_SOURCE_A: "fhir://h.example:8443/fhir/?client_id=abc&client_secret=s3cr3t&token_url=https://h.example/token" }, "a")!;
    expect(s.baseUrl).toBe("https://h.example:8443/fhir");
    expect(s.auth).toEqual({
      kind: "client-credentials",
      clientId: "abc",
      clientSecret: "s3cr3t",
      tokenAuth: "basic",
      tokenUrl: "https://h.example/token",
      scope: "system/*.read system/*.write",
    });
    expect(s.retry).toEqual(DEFAULT_RETRY);
    expect([...s.retry.statusCodes]).toEqual([408, 429, 500, 502, 503, 504]);
    expect([...s.retry.methods]).toEqual(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
    expect(s.retry).toMatchObject({ maxAttempts: 5, backoffFactor: 0.5, maxBackoffWait: 60 });
  });

  it("parses every parameter of the table", () => {
    const s = source(
      {
        FHIR_SOURCE_X:
          "fhir://h.example/r4?client_id=c&use_jwt_assertion=true&private_key=env:KEY&kid=k1&alg=ES384&scope=system/Patient.rs&audience=https://h.example/aud" +
          "&header.X-Tenant=t1&header.Epic-Client-ID=env:EPIC_ID&retry_status_codes=503,429&retryable_methods=get,post&max_attempts=3" +
          "&retry_backoff_factor=0.1&max_backoff_wait=2&timeout=7.5&rewrite_bodies=all",
        KEY: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
        EPIC_ID: "epic-client",
      },
      "x",
    )!;
    expect(s.auth).toMatchObject({ kind: "jwt-assertion", clientId: "c", kid: "k1", alg: "ES384", scope: "system/Patient.rs", audience: "https://h.example/aud" });
    expect(s.headers).toEqual([
      ["X-Tenant", "t1"],
      ["Epic-Client-ID", "epic-client"],
    ]);
    expect([...s.retry.statusCodes]).toEqual([503, 429]);
    expect([...s.retry.methods]).toEqual(["GET", "POST"]);
    expect(s.retry).toMatchObject({ maxAttempts: 3, backoffFactor: 0.1, maxBackoffWait: 2 });
    expect(s.timeoutMs).toBe(7500);
    expect(s.rewriteBodies).toBe("all");
  });

  it("reads static token, basic auth from user info and from parameters", () => {
    expect(source({ FHIR_SOURCE_T: "fhir://h.example/r4?token=env:TOK", TOK: "abc.def" }, "t")!.auth).toEqual({ kind: "bearer", token: "abc.def" });
    expect(source({ FHIR_SOURCE_B: "fhir://u%40x:p%3Ass@h.example/r4" }, "b")!.auth).toEqual({ kind: "basic", username: "u@x", password: "p:ss" });
    expect(source({ FHIR_SOURCE_B: "fhir://h.example/r4?username=u&password=p+q" }, "b")!.auth).toEqual({ kind: "basic", username: "u", password: "p+q" });
    expect(source({ FHIR_SOURCE_B: "fhir://u:p@h.example/r4" }, "b")!.baseUrl).toBe("https://h.example/r4");
  });

  it("keeps + and # in values as written (secrets are often base64)", () => {
    const s = source({ FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a&client_secret=ab+c/d#e=" }, "a")!;
    expect(s.auth).toMatchObject({ clientSecret: "ab+c/d#e=" });
  });

  it("accepts token_auth=post for client_secret_post", () => {
    expect(source({ FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a&client_secret=b&token_auth=post" }, "a")!.auth).toMatchObject({ tokenAuth: "post" });
  });

  it("accepts fhir+http only with ALLOW_INSECURE_HTTP", () => {
    expect(issuesOf({ FHIR_SOURCE_L: "fhir+http://127.0.0.1:8080/fhir" }, "l")).toEqual([expect.objectContaining({ field: "url", code: "insecure-url" })]);
    expect(source({ FHIR_SOURCE_L: "fhir+http://127.0.0.1:8080/fhir", ALLOW_INSECURE_HTTP: "true" }, "l")!.baseUrl).toBe("http://127.0.0.1:8080/fhir");
  });
});

describe("1b. JSON: FHIR_SOURCES", () => {
  it("reads an object (wrangler [vars.FHIR_SOURCES.<name>]) and the same as a JSON string", () => {
    const spec = { medplum: { url: "https://api.medplum.com/fhir/R4/", client_id: "c", client_secret: "env:S", headers: { "X-A": "1" }, max_attempts: 2, retry_status_codes: [503] } };
    for (const value of [spec, JSON.stringify(spec)]) {
      const s = source({ FHIR_SOURCES: value, S: "secret" }, "medplum")!;
      expect(s.baseUrl).toBe("https://api.medplum.com/fhir/R4");
      expect(s.auth).toMatchObject({ kind: "client-credentials", clientSecret: "secret" });
      expect(s.headers).toEqual([["X-A", "1"]]);
      expect(s.retry.maxAttempts).toBe(2);
      expect([...s.retry.statusCodes]).toEqual([503]);
    }
  });

  it("both forms at once; a name declared twice is an error", () => {
    const config = readEdgeConfig({ FHIR_SOURCE_A: "fhir://a.example/r4", FHIR_SOURCES: { b: { url: "https://b.example/r4" }, a: { url: "https://c.example" } } });
    expect(config.sources.has("b")).toBe(true);
    expect(config.sources.has("a")).toBe(false);
    expect(config.brokenSources.get("a")).toEqual([expect.objectContaining({ code: "duplicate-source" })]);
  });

  it("reports FHIR_SOURCES that is not JSON", () => {
    expect(readEdgeConfig({ PROXY_AUTH: "none", FHIR_SOURCES: "{nope" }).issues).toEqual([expect.objectContaining({ subject: "FHIR_SOURCES", code: "invalid-json" })]);
  });
});

describe("configuration errors", () => {
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    ["unknown parameter", { FHIR_SOURCE_A: "fhir://h.example/r4?client_secrt=x" }, "client_secrt", "unknown-field"],
    ["client_secret_path", { FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a&client_secret_path=/x" }, "client_secret_path", "unsupported-field"],
    ["missing env binding", { FHIR_SOURCE_A: "fhir://h.example/r4?token=env:NOPE" }, "token", "missing-binding"],
    ["two auth methods", { FHIR_SOURCE_A: "fhir://h.example/r4?token=t&username=u&password=p" }, "auth", "conflicting-auth"],
    ["client_id without secret", { FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a" }, "client_secret", "missing-field"],
    ["assertion without key", { FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a&use_jwt_assertion=true" }, "private_key", "missing-field"],
    ["assertion with a bad key", { FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a&use_jwt_assertion=true&private_key=abc" }, "private_key", "invalid-key"],
    ["bad alg", { FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a&use_jwt_assertion=true&private_key=env:K&alg=HS256", K: '{"kty":"EC","d":"x"}' }, "alg", "invalid-value"],
    ["bad max_attempts", { FHIR_SOURCE_A: "fhir://h.example/r4?max_attempts=0" }, "max_attempts", "invalid-value"],
    ["bad timeout", { FHIR_SOURCE_A: "fhir://h.example/r4?timeout=abc" }, "timeout", "invalid-value"],
    ["bad status list", { FHIR_SOURCE_A: "fhir://h.example/r4?retry_status_codes=503,abc" }, "retry_status_codes", "invalid-value"],
    ["bad method list", { FHIR_SOURCE_A: "fhir://h.example/r4?retryable_methods=GET,FETCH" }, "retryable_methods", "invalid-value"],
    ["bad rewrite_bodies", { FHIR_SOURCE_A: "fhir://h.example/r4?rewrite_bodies=some" }, "rewrite_bodies", "invalid-value"],
    ["bad token_auth", { FHIR_SOURCE_A: "fhir://h.example/r4?client_id=a&client_secret=b&token_auth=jwt" }, "token_auth", "invalid-value"],
    ["reserved header", { FHIR_SOURCE_A: "fhir://h.example/r4?header.Host=evil.example" }, "header.Host", "reserved-header"],
    // Every hop-by-hop header is reserved, from the forwarder's own list.
    ["hop-by-hop Proxy-Connection", { FHIR_SOURCE_A: "fhir://h.example/r4?header.Proxy-Connection=x" }, "header.Proxy-Connection", "reserved-header"],
    ["hop-by-hop Proxy-Authenticate", { FHIR_SOURCE_A: "fhir://h.example/r4?header.Proxy-Authenticate=x" }, "header.Proxy-Authenticate", "reserved-header"],
    ["header with a newline", { FHIR_SOURCE_A: "fhir://h.example/r4?header.X-A=a%0D%0Ab" }, "header.X-A", "invalid-header"],
    ["scheme", { FHIR_SOURCE_A: "https://h.example/r4" }, "url", "invalid-url"],
    // Found by source.property.test.ts: each was accepted and then threw (or was logged by the runtime) on every request.
    ["token with a NUL", { FHIR_SOURCES: { a: { url: "https://h.example/r4", token: "abc\u0000def" } } }, "token", "invalid-value"],
    ["token with a line break", { FHIR_SOURCE_A: "fhir://h.example/r4?token=abc%0Adef" }, "token", "invalid-value"],
    ["header value that is not ASCII", { FHIR_SOURCE_A: "fhir://h.example/r4?header.X-A=caf%C3%A9" }, "header.X-A", "invalid-header"],
    ["JSON without url", { FHIR_SOURCES: { a: { token: "t" } } }, "url", "missing-field"],
    ["JSON url with a query", { FHIR_SOURCES: { a: { url: "https://h.example/r4?x=1" } } }, "url", "invalid-url"],
  ];
  it.each(cases)("%s names the source and the field", (_, env, field, code) => {
    const config = readEdgeConfig(env);
    expect(config.sources.has("a")).toBe(false);
    expect(config.brokenSources.get("a")).toContainEqual(expect.objectContaining({ subject: "a", field, code }));
  });

  it.each([
    ["a method list", "fhir://h.example/r4?retryable_methods=GET,Zq7Secret"],
    ["a raw & in a secret", "fhir://h.example/r4?client_id=a&client_secret=abc&Zq7Secret"],
    ["a raw ? in the user info", "fhir://h.example?:Zq7Secret@h.example/r4"],
    ["a raw ? and = in the user info", "fhir://h.example?:Zq7Secret=%@h.example/r4"],
    ["a header name", "fhir://h.example/r4?header.X%20Zq7Secret=1"],
  ])("never repeats a value in a message, even one written in the wrong place (%s)", (_, connection) => {
    // Found by source.property.test.ts: each of these echoed part of what was written.
    const config = readEdgeConfig({ PROXY_AUTH: "none", FHIR_SOURCE_A: connection });
    expect(config.brokenSources.get("a")?.length).toBeGreaterThan(0);
    expect(JSON.stringify(config.issues)).not.toContain("Zq7Secret");
  });

  it("never puts a value in a message", () => {
    const config = readEdgeConfig({ FHIR_SOURCE_A: "fhir://h.example/r4?token=SUPERSECRET&username=u&password=PASSWORD1" });
    const text = JSON.stringify(config.issues);
    expect(text).not.toContain("SUPERSECRET");
    expect(text).not.toContain("PASSWORD1");
  });

  it("collects every problem of a source, not only the first", () => {
    const issues = issuesOf({ FHIR_SOURCE_A: "fhir://h.example/r4?max_attempts=0&timeout=-1&rewrite_bodies=x" }, "a");
    expect(issues.map((i) => i.field).sort()).toEqual(["max_attempts", "rewrite_bodies", "timeout"]);
  });

  it("a bad source never takes the others down", () => {
    const config = readEdgeConfig({ FHIR_SOURCE_GOOD: "fhir://g.example/r4", FHIR_SOURCE_BAD: "fhir://b.example/r4?nope=1" });
    expect(config.sources.has("good")).toBe(true);
    expect(config.brokenSources.has("bad")).toBe(true);
  });

  it("refuses names the edge routes itself and names outside the pattern", () => {
    const config = readEdgeConfig({ PROXY_AUTH: "none", FHIR_SOURCE_STATUS: "fhir://s.example/r4", FHIR_SOURCES: { Bad_Name: { url: "https://x.example" } } });
    expect(config.sources.size).toBe(0);
    expect(config.issues.map((i) => i.code)).toEqual(["invalid-source-name", "invalid-source-name"]);
  });
});

describe("2. who may call the edge: settings", () => {
  it("defaults to api-key and reads client-name:key pairs", () => {
    expect(readEdgeConfig({ PROXY_API_KEYS: "app:k1, ops:k:2" }).inbound).toEqual({
      mode: "api-key",
      keys: [
        { client: "app", key: "k1" },
        { client: "ops", key: "k:2" },
      ],
    });
  });
  it("reports an api-key edge with no key, and an unknown PROXY_AUTH (which fails closed)", () => {
    expect(readEdgeConfig({}).issues).toContainEqual(expect.objectContaining({ subject: "PROXY_API_KEYS", code: "no-api-keys" }));
    const bad = readEdgeConfig({ PROXY_AUTH: "maybe" });
    expect(bad.inbound).toBeUndefined();
    expect(bad.issues).toContainEqual(expect.objectContaining({ subject: "PROXY_AUTH" }));
  });
  it("none only when set explicitly", () => {
    expect(readEdgeConfig({ PROXY_AUTH: "none" }).inbound).toEqual({ mode: "none" });
  });
});
