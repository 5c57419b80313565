import { err, ok, type Result } from "../result.ts";
import type { ConfigIssue } from "./types.ts";
import { PARAMETER_NAME, type SourceInput } from "./source.ts";

/**
 * Parses a `fhir://` connection string (HealthChain's form, plus `fhir+http://`
 * for plain-http upstreams) into the fields {@link resolveSource} validates.
 *
 * The query carries configuration only; it is split on `&` and `=` and each
 * part percent-decoded, with `+` left as a plus (secrets are often base64).
 * Everything after the first `?` is configuration, `#` included.
 *
 *     fhir://user:pass@host:8443/fhir/R4?client_id=abc&header.X-Tenant=7
 *
 * @see docs/configuration.md#connection-strings-fhir_source_name
 */
export function parseConnectionString(name: string, text: string): Result<SourceInput, ConfigIssue[]> {
  const value = text.trim();
  const match = /^(fhir|fhir\+http|fhir\+https):\/\//i.exec(value);
  if (!match) {
    return err([
      {
        subject: name,
        field: "url",
        code: "invalid-url",
        message: `Source ${name}: a connection string starts with fhir:// (https) or fhir+http:// (http)`,
      },
    ]);
  }
  const scheme = match[1]!.toLowerCase() === "fhir+http" ? "http" : "https";
  const rest = value.slice(match[0].length);
  const q = rest.indexOf("?");
  const location = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? "" : rest.slice(q + 1);

  let url: URL;
  try {
    url = new URL(`${scheme}://${location}`);
  } catch {
    return err([{ subject: name, field: "url", code: "invalid-url", message: `Source ${name}: the host or path is not a valid URL` }]);
  }
  const issues: ConfigIssue[] = [];
  const fields = new Map<string, string>();
  const headers: Array<[string, string]> = [];
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq === -1) {
      // Not echoed: a part without `=` is most often the tail of a value holding a raw `&` (a secret).
      issues.push({ subject: name, field: "query", code: "invalid-parameter", message: `Source ${name}: a parameter has no '='; percent-encode & inside values as %26` });
      continue;
    }
    const rawKey = pair.slice(0, eq);
    const rawValue = pair.slice(eq + 1);
    const key = safeDecode(rawKey);
    const decoded = safeDecode(rawValue);
    if (key === undefined || decoded === undefined) {
      // The field is named only when it looks like a parameter name; otherwise it may be a piece of a value.
      const field = key !== undefined && PARAMETER_NAME.test(key) ? key : "query";
      issues.push({ subject: name, field, code: "invalid-encoding", message: `Source ${name}: a parameter is not valid percent-encoding` });
      continue;
    }
    if (key.toLowerCase().startsWith("header.")) {
      headers.push([key.slice("header.".length), decoded]);
    } else if (fields.has(key)) {
      issues.push({ subject: name, field: key, code: "duplicate-field", message: `Source ${name}: ${key} is given twice` });
    } else {
      fields.set(key, decoded);
    }
  }
  if (url.username || url.password) {
    const username = safeDecode(url.username);
    const password = safeDecode(url.password);
    if (fields.has("username") || fields.has("password")) {
      issues.push({ subject: name, field: "username", code: "duplicate-field", message: `Source ${name}: credentials are given both in the URL and as parameters` });
    } else if (username === undefined || password === undefined) {
      issues.push({ subject: name, field: "username", code: "invalid-encoding", message: `Source ${name}: the URL's user info is not valid percent-encoding` });
    } else {
      fields.set("username", username);
      fields.set("password", password);
    }
    url.username = "";
    url.password = "";
  }
  if (issues.length > 0) return err(issues);
  return ok({ url: url.href, fields, headers });
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}
