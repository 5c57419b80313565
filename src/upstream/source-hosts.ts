import type { SourceConfig } from "../config/types.ts";

/**
 * Whether the edge may fetch a Bulk Data location for a source: an absolute
 * http(s) URL without user info, on the source's own origin or on a host the
 * source lists in `bulk_file_hosts` (`host` means its default port,
 * `host:port` that port). Plain http only where the edge allows it at all.
 * Checked when a URL is signed, and by the source's client
 * (`sendTo`, src/upstream/source-client.ts) before anything is sent there.
 * @see ../../docs/bulk-data.md
 */
export function mayFetch(source: Pick<SourceConfig, "origin" | "bulk">, raw: string, allowInsecureHttp: boolean): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  if (url.username !== "" || url.password !== "") return false;
  if (url.protocol !== "https:" && !(url.protocol === "http:" && allowInsecureHttp)) return false;
  if (url.origin === source.origin) return true;
  // URL.host drops a default port, so a bare listed host matches only that.
  return source.bulk.fileHosts.includes(url.host);
}

/** The host of a URL for a message (hosts are configuration, not secrets), or a placeholder. */
export function hostOf(raw: string): string {
  try {
    return new URL(raw).host;
  } catch {
    return "(not a URL)";
  }
}
