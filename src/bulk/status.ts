import { BULK_URL_TTL_SECONDS, bulkUrlSecret } from "./edge-url.ts";

/** The `bulk` field of `GET /status`: which key signs Bulk Data URLs (never the key) and how long they live. */
export function bulkStatus(env: Readonly<Record<string, unknown>>) {
  return {
    urlKey: bulkUrlSecret(env)
      ? "BULK_URL_SECRET"
      : "per isolate: BULK_URL_SECRET is not set, so an export's status and file URLs only work on the isolate that made them",
    urlTtlSeconds: BULK_URL_TTL_SECONDS,
  };
}
