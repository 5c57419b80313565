import type { ConfigIssue } from "./types.ts";

/**
 * Resolves a configured value: `env:NAME` is read from the Worker binding
 * `NAME` (a secret), so no secret has to sit in a URL or in wrangler.toml;
 * any other string is the value itself. A missing or empty binding is an
 * issue naming the field and the binding, never a value.
 * @see docs/configuration.md#connection-strings-fhir_source_name
 */
export function resolveEnvValue(
  raw: string,
  env: Readonly<Record<string, unknown>>,
  report: (issue: Pick<ConfigIssue, "code" | "message">) => void,
  field: string,
): string | undefined {
  if (!raw.startsWith("env:")) return raw;
  const binding = raw.slice(4);
  const value = env[binding];
  if (typeof value === "string" && value !== "") return value;
  report({ code: "missing-binding", message: `${field} refers to the binding ${binding}, which is not set` });
  return undefined;
}
