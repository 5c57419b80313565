import type { SourceConfig } from "../../config/types.ts";
import { toBase64 } from "../../crypto.ts";

/** How the edge proves itself to one source. */
export interface UpstreamCredentials {
  /** The `Authorization` value for the next upstream request, or undefined for a public upstream. */
  authorization(): Promise<string | undefined>;
  /**
   * Called on an upstream 401 with the `Authorization` value that was refused:
   * forgets that token, and only that one (a newer token another request
   * fetched meanwhile is kept). Returns whether a retry with a fresh one makes sense.
   */
  invalidate(refused: string | undefined): Promise<boolean>;
  /** Values that must never appear in a response to the client. */
  secrets(): readonly string[];
}

const encoder = new TextEncoder();

/** Static bearer token and basic auth: computed once, nothing to refresh. */
export function staticCredentials(source: SourceConfig): UpstreamCredentials | undefined {
  const auth = source.auth;
  let header: string | undefined;
  let raw: string[] = [];
  if (auth.kind === "none") header = undefined;
  else if (auth.kind === "bearer") {
    header = `Bearer ${auth.token}`;
    raw = [auth.token];
  } else if (auth.kind === "basic") {
    const encoded = toBase64(encoder.encode(`${auth.username}:${auth.password}`));
    header = `Basic ${encoded}`;
    raw = [encoded, auth.password];
  } else return undefined;
  const secrets = raw.filter((s) => s.length >= 4);
  return {
    authorization: async () => header,
    invalidate: async () => false,
    secrets: () => secrets,
  };
}
