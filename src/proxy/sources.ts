import type { EdgeConfig } from "../config/edge-config.ts";
import type { SourceConfig } from "../config/types.ts";
import { ConfigurationError, NotFoundError } from "../errors.ts";
import { SOURCE_NAME } from "../config/types.ts";

/**
 * The configured source by name: 404 when there is none, 500 naming the
 * source and its faulty fields (never their values) when it is misconfigured.
 */
export function requireSource(config: EdgeConfig, name: string): SourceConfig {
  const source = SOURCE_NAME.test(name) ? config.sources.get(name) : undefined;
  if (source) return source;
  const broken = SOURCE_NAME.test(name) ? config.brokenSources.get(name) : undefined;
  if (broken) {
    const fields = broken.map((i) => i.field).filter((f): f is string => f !== undefined);
    throw new ConfigurationError(
      "source-misconfigured",
      `Source ${name} is misconfigured: ${broken.map((i) => i.message.replace(`Source ${name}: `, "")).join("; ")}`,
      fields.length > 0 ? fields : undefined,
    );
  }
  throw new NotFoundError("source-not-found", `No source named ${JSON.stringify(name.slice(0, 64))} is configured on this edge`);
}
