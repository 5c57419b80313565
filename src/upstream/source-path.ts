import { err, ok, type Result } from "../result.ts";
import type { SourceConfig } from "../config/types.ts";

export type UnsafePathReason = "dot-segment" | "empty-segment" | "encoded-separator" | "control-character" | "bad-encoding" | "backslash";

export interface SourcePath {
  /** The absolute upstream URL: the source's origin and base path, then the client's path and query as sent. */
  url: string;
  /** The path after the source, split and percent-decoded: `["Patient", "123", "_history"]`. */
  segments: string[];
}

/**
 * Joins the client's path (after `/<source>`) and query onto the source's
 * base. The path is checked segment by segment, raw and decoded, so nothing
 * (`..`, `%2e%2e`, `//host`, `%2F`, `\`, absolute URLs) can leave the
 * configured base; the query is kept byte for byte, since it cannot change
 * the host. A final parse confirms origin and base path.
 * @param rest the raw path after the source segment: `""` or starting with `/`
 * @param search the raw query including `?`, or `""`
 */
export function resolveSourcePath(source: SourceConfig, rest: string, search: string): Result<SourcePath, UnsafePathReason> {
  const segments: string[] = [];
  if (rest !== "" && rest !== "/") {
    const raw = rest.slice(1).split("/");
    for (let i = 0; i < raw.length; i++) {
      const segment = raw[i]!;
      if (segment === "") {
        if (i === raw.length - 1) break;
        return err("empty-segment");
      }
      if (segment.includes("\\")) return err("backslash");
      let decoded: string;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        return err("bad-encoding");
      }
      if (decoded === "." || decoded === "..") return err("dot-segment");
      if (decoded.includes("/") || decoded.includes("\\")) return err("encoded-separator");
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u001f\u007f]/.test(decoded)) return err("control-character");
      segments.push(decoded);
    }
  }
  const url = source.origin + source.basePath + rest + search;
  const parsed = new URL(url);
  if (parsed.origin !== source.origin || !(parsed.pathname === source.basePath || parsed.pathname.startsWith(source.basePath + "/") || (source.basePath === "" && parsed.pathname === "/"))) {
    return err("dot-segment");
  }
  return ok({ url, segments });
}
