import * as fc from "fast-check";
import { describe, it } from "vitest";
import { readEdgeConfig, type EdgeConfig } from "../../../src/config/edge-config.ts";
import { SOURCE_NAME, type ConfigIssue, type SourceConfig } from "../../../src/config/types.ts";
import { fuzzParameters, fuzzTimeout } from "../../fixtures/fuzz.ts";

/** Every secret the generators write carries this mark, so a leak into a message is found by searching for it. */
const MARK = "Zq7Secret";
const secret = fc
  .string({ unit: fc.constantFrom(..."abcXYZ019-._~+/=:@!$'()*,;%&?# \u00e9\u20ac\n\u0000"), maxLength: 10 })
  .map((tail) => MARK + tail);
const plain = fc.oneof(
  fc.constantFrom("abc", "x", "", " ", "true", "false", "0", "1", "3", "-1", "1e3", "NaN", "0.5", "600", "601", "RS384", "ES256", "HS256", "basic", "post", "all", "bundles"),
  fc.constantFrom("GET,POST", "get, patch", "GET,,PUT", "500,502", "99", "600,700", "https://auth.example/token", "ftp://x", "env:", "%zz", "%E0%A4%A"),
  fc.string({ maxLength: 8 }),
);
const bindingName = fc.constantFrom("SECRET_A", "SECRET_B", "MISSING", "EMPTY", "", "FHIR_SOURCE_X");
const value = fc.oneof({ weight: 3, arbitrary: secret }, { weight: 3, arbitrary: plain }, { weight: 1, arbitrary: bindingName.map((b) => `env:${b}`) });
const FIELDS = [
  ...["client_id", "client_secret", "token_url", "scope", "audience", "token_auth", "use_jwt_assertion", "private_key", "kid", "alg"],
  ...["token", "username", "password", "retry_status_codes", "retryable_methods", "max_attempts", "retry_backoff_factor", "max_backoff_wait"],
  ...["timeout", "rewrite_bodies", "client_secret_path", "unknown_field", "Token", "url"],
];
const headerName = fc.constantFrom("X-Tenant", "x-api-key", "Authorization", "Host", "Content-Length", "Bad Name", "X:Y", "", "É", "X-\u0000", "Transfer-Encoding", "X-Tenant");
const fieldKey = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...FIELDS) }, { weight: 1, arbitrary: headerName.map((h) => `header.${h}`) });

/** Percent-encodes some of a value as a user might, and sometimes leaves reserved characters raw. */
const encoded = (text: string, raw: boolean) => (raw ? text : encodeURIComponent(text));

const host = fc.constantFrom("ehr.example", "ehr.example:8443", "127.0.0.1:8080", "[::1]:9000", "", "ex ample", "h.example:99999", "xn--nxasmq6b.example", "evil.example#", "@h.example");
const basePath = fc.constantFrom("", "/", "/fhir", "/fhir/R4/", "/a%20b", "/..", "/fhir?x", "//double");
const connectionString = fc
  .record({
    scheme: fc.constantFrom("fhir://", "fhir+http://", "FHIR://", "fhir+https://", "http://", "fhir:/", ""),
    user: fc.option(fc.tuple(value, value, fc.boolean()), { nil: undefined }),
    host,
    basePath,
    params: fc.array(fc.tuple(fieldKey, value, fc.boolean()), { maxLength: 6 }),
    separator: fc.constantFrom("&", "&&", "&=&"),
  })
  .map(({ scheme, user, host: h, basePath: p, params, separator }) => {
    const userinfo = user ? `${encoded(user[0], user[2])}:${encoded(user[1], user[2])}@` : "";
    const query = params.map(([k, v, raw]) => `${k}=${encoded(v, raw)}`).join(separator);
    return `${scheme}${userinfo}${h}${p}${query ? "?" + query : ""}`;
  });

/** Connection strings close to right, so that many are accepted and what is accepted is checked for use. */
const auth = fc.oneof(
  fc.constant(""),
  value.map((v) => `token=${encodeURIComponent(v)}`),
  fc.tuple(value, value).map(([u, p]) => `username=${encodeURIComponent(u)}&password=${encodeURIComponent(p)}`),
  fc.tuple(value, value).map(([u, p]) => `client_id=${encodeURIComponent(u)}&client_secret=${encodeURIComponent(p)}&token_url=https://auth.example/token`),
);
const nearlyRight = fc
  .tuple(
    fc.constantFrom("fhir://ehr.example/fhir", "fhir://ehr.example:8443/fhir/R4", "fhir+http://127.0.0.1:8080/"),
    auth,
    fc.array(fc.tuple(fc.constantFrom("X-Tenant", "X-Region", "Prefer"), value), { maxLength: 2 }),
    fc.constantFrom("", "max_attempts=3", "timeout=5", "retryable_methods=GET,POST", "rewrite_bodies=all"),
  )
  .map(([base, a, headers, extra]) => {
    const params = [a, ...headers.map(([h, v]) => `header.${h}=${encodeURIComponent(v)}`), extra].filter((p) => p !== "");
    return params.length > 0 ? `${base}?${params.join("&")}` : base;
  });

const jsonField = fc.oneof({ weight: 4, arbitrary: value }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
const jsonSource = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      {
        url: fc.oneof(fc.tuple(fc.constantFrom("https://", "http://", "ftp://", ""), host, basePath).map((parts) => parts.join("")), secret, fc.jsonValue({ maxDepth: 1 })),
        headers: fc.oneof(fc.dictionary(headerName, fc.oneof(value, fc.jsonValue({ maxDepth: 1 })), { maxKeys: 3 }), fc.jsonValue({ maxDepth: 1 })),
        fields: fc.dictionary(fc.constantFrom(...FIELDS), jsonField, { maxKeys: 5 }),
      },
      { requiredKeys: ["fields"] },
    ).map(({ fields, ...rest }) => ({ ...fields, ...rest })),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const sourceName = fc.oneof({ weight: 5, arbitrary: fc.constantFrom("epic", "cerner-prod", "a", "medplum") }, { weight: 1, arbitrary: fc.constantFrom("Epic", "aggregate", "status", "-x", "a_b", "", "x".repeat(64)) });
const varName = fc.oneof({ weight: 5, arbitrary: fc.constantFrom("EPIC", "CERNER_PROD", "A", "MEDPLUM") }, { weight: 1, arbitrary: fc.constantFrom("epic", "STATUS", "_X", "X__Y", "É") });

const env = fc.record(
  {
    connections: fc.dictionary(
      varName,
      fc.oneof({ weight: 4, arbitrary: nearlyRight }, { weight: 4, arbitrary: connectionString }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
      { maxKeys: 2 },
    ),
    json: fc.dictionary(sourceName, jsonSource, { maxKeys: 2 }),
    jsonAs: fc.constantFrom("object", "string", "garbage"),
    insecure: fc.constantFrom("true", "false", undefined),
    bindings: fc.record({ SECRET_A: secret, SECRET_B: secret, EMPTY: fc.constant("") }),
  },
  { requiredKeys: ["connections", "json", "jsonAs", "bindings"] },
).map(({ connections, json, jsonAs, insecure, bindings }) => {
  const vars: Record<string, unknown> = { PROXY_AUTH: "none", ...bindings, ...(insecure ? { ALLOW_INSECURE_HTTP: insecure } : {}) };
  for (const [k, v] of Object.entries(connections)) vars[`FHIR_SOURCE_${k}`] = v;
  if (Object.keys(json).length > 0) vars.FHIR_SOURCES = jsonAs === "object" ? json : jsonAs === "string" ? JSON.stringify(json) : JSON.stringify(json).slice(1);
  return vars;
});

function readSafely(vars: Record<string, unknown>): EdgeConfig {
  try {
    return readEdgeConfig(vars);
  } catch (error) {
    throw new Error(`readEdgeConfig threw ${String(error)}`);
  }
}

/** A plain check: vitest's expect costs more than the code under test here, and this runs for every issue of every case. */
function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(what);
}

const ASCII_HEADER_VALUE = /^[\t\x20-\x7e]*$/;

function checkIssue(issue: ConfigIssue): void {
  const shown = JSON.stringify(issue);
  check(typeof issue.subject === "string" && typeof issue.message === "string" && /^[a-z]+(-[a-z]+)*$/.test(issue.code), `issue shape: ${shown}`);
  check(issue.field === undefined || typeof issue.field === "string", `issue field: ${shown}`);
  for (const part of [issue.message, issue.field ?? "", issue.subject]) check(!part.includes(MARK), `a secret in an issue: ${shown}`);
}

/** What the edge does with a source on every request: its headers and its Authorization must be sendable. */
function checkUsable(source: SourceConfig): void {
  check(source.baseUrl === source.origin + source.basePath && new URL(source.baseUrl).origin === source.origin, `base: ${source.baseUrl}`);
  const headers = new Headers();
  for (const [name, v] of source.headers) headers.set(name, v);
  if (source.auth.kind === "bearer") headers.set("Authorization", `Bearer ${source.auth.token}`);
  // Printable ASCII only: the runtime logs a header value outside it, secret or not.
  for (const [name, v] of source.headers) check(ASCII_HEADER_VALUE.test(v), `header ${name} is not printable ASCII`);
  if (source.auth.kind === "bearer") check(ASCII_HEADER_VALUE.test(source.auth.token), "token is not printable ASCII");
}

describe("connection strings and FHIR_SOURCES: a source or a list of field errors, never an exception, never a value", () => {
  it(
    "every declared source comes out usable or with its issues; no message holds a secret",
    () => {
      fc.assert(
        fc.property(env, (vars) => {
          const config = readSafely(vars);
          for (const issue of config.issues) checkIssue(issue);
          for (const [name, issues] of config.brokenSources) {
            check(issues.length > 0 && !config.sources.has(name), `broken source ${name} without issues, or also usable`);
            // What /status shows per broken source.
            for (const issue of issues) checkIssue(issue);
          }
          for (const [name, source] of config.sources) {
            check(SOURCE_NAME.test(name) && source.name === name, `source name ${name}`);
            checkUsable(source);
          }
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(800),
  );
});
