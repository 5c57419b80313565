import type { SourceConfig } from "../../config/types.ts";
import { importAssertionKeys, type AssertionKey } from "./assertion.ts";

const imported = new Map<string, Promise<AssertionKey[]>>();

/** A JWT-assertion source's keys, imported once per isolate (never per request). */
export function assertionKeys(source: SourceConfig): Promise<AssertionKey[]> | undefined {
  const auth = source.auth;
  if (auth.kind !== "jwt-assertion") return undefined;
  const cacheKey = `${auth.alg}\u0000${auth.kid ?? ""}\u0000${auth.privateKey}`;
  let keys = imported.get(cacheKey);
  if (!keys) {
    keys = importAssertionKeys(auth.privateKey, auth.alg, auth.kid);
    keys.catch(() => imported.delete(cacheKey));
    imported.set(cacheKey, keys);
  }
  return keys;
}
