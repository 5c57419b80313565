import { err, ok, type Result } from "../result.ts";
import type { SourceConfig } from "../config/types.ts";

export type UnsafePathReason = "dot-segment" | "empty-segment" | "encoded-separator" | "control-character" | "bad-encoding" | "backslash" | "fragment";

export interface SourcePath {
  /** The absolute upstream URL: the source's origin and base path, then the client's path and query as sent. */
  url: string;
  /** The path after the source, split and percent-decoded: `["Patient", "123", "_history"]`. */
  segments: string[];
}

/**
 * Why a decoded segment could leave the base at some upstream, if it could:
 * read as sent, with its path parameters dropped (Tomcat and Jetty read
 * `..;x` as `..`), decoded once more (`%252e%252e`), or NFKC-normalised
 * (`\uff0e\uff0e`, fullwidth dots, and `\u2025` are `..` there). FHIR paths are
 * ASCII names and ids, so none of these refuses a real request.
 */
function unsafeSegment(decoded: string): UnsafePathReason | undefined {
  if (/%[0-9a-f]{2}/i.test(decoded)) return "bad-encoding";
  // eslint-disable-next-line no-control-regex
  const views = /[^\u0000-\u007f]/.test(decoded) ? [decoded, decoded.normalize("NFKC")] : [decoded];
  for (const view of views) {
    const name = view.split(";", 1)[0];
    if (name === "." || name === "..") return "dot-segment";
    if (view.includes("/") || view.includes("\\")) return "encoded-separator";
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(view)) return "control-character";
  }
  return undefined;
}

/**
 * Joins the client's path (after `/<source>`) and query onto the source's
 * base. The path is checked segment by segment, raw and decoded (see
 * {@link unsafeSegment} for how upstreams may read it), so nothing
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
      // A `#` would end the path at the upstream: it would get less than the path checked and authorised here.
      if (segment.includes("#")) return err("fragment");
      // A raw space too: the URL parser trims a trailing one, so the upstream would see another path than the one checked.
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u0020\u007f]/.test(segment)) return err("control-character");
      let decoded: string;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        return err("bad-encoding");
      }
      const unsafe = unsafeSegment(decoded);
      if (unsafe) return err(unsafe);
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
