import type { ChannelConfig } from "./channel.ts";
import type { EdgeConfig } from "./edge-config.ts";
import type { ConfigIssue, SourceConfig } from "./types.ts";
import { ConfigurationError, NotFoundError } from "../errors.ts";
import { SOURCE_NAME } from "./types.ts";

/**
 * A configured source or channel by name: 404 when there is none, 500 naming
 * it and its faulty fields (never their values) when it is misconfigured.
 */
function requireNamed<T>(kind: "Source" | "Channel", name: string, ok: ReadonlyMap<string, T>, broken: ReadonlyMap<string, ConfigIssue[]>): T {
  const valid = SOURCE_NAME.test(name);
  const found = valid ? ok.get(name) : undefined;
  if (found) return found;
  const code = kind.toLowerCase();
  const issues = valid ? broken.get(name) : undefined;
  if (issues) {
    const fields = issues.map((i) => i.field).filter((f): f is string => f !== undefined);
    throw new ConfigurationError(
      `${code}-misconfigured`,
      `${kind} ${name} is misconfigured: ${issues.map((i) => i.message.replace(`${kind} ${name}: `, "")).join("; ")}`,
      fields.length > 0 ? fields : undefined,
    );
  }
  throw new NotFoundError(`${code}-not-found`, `No ${code} named ${JSON.stringify(name.slice(0, 64))} is configured on this edge`);
}

export function requireSource(config: EdgeConfig, name: string): SourceConfig {
  return requireNamed("Source", name, config.sources, config.brokenSources);
}

export function requireChannel(config: EdgeConfig, name: string): ChannelConfig {
  return requireNamed("Channel", name, config.channels, config.brokenChannels);
}

/** Every declared source's name (misconfigured ones included), by name. */
export function declaredSources(config: EdgeConfig): string[] {
  return [...config.sources.keys(), ...config.brokenSources.keys()].sort();
}
