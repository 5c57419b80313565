import type { SourceConfig } from "../config/types.ts";

/**
 * Rewrites the upstream's absolute base URL into the edge's, on the text of a
 * body or header: no JSON parse, so a 200 KB Bundle costs one scan. A match
 * must end at a URL boundary, so base `https://h/fhir` never rewrites
 * `https://h/fhir2/...`. JSON's optional `\/` escaping is handled too.
 *
 * This covers Bundle `link[].url`, `entry[].fullUrl`, `response.location` and
 * any absolute reference to the same server: every URL a client could follow
 * then goes through the edge.
 * @see docs/proxy.md#url-rewriting
 */
export interface UrlRewriter {
  /** Replaces every upstream base in `text`; returns `text` itself when none occurs. */
  rewriteText(text: string): string;
  /** For `Location` and `Content-Location`: absolute URLs and path-absolute ones under the base. */
  rewriteHeader(value: string): string;
}

/** Characters that may continue a path segment; the base must not be followed by one. */
function continuesSegment(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    code === 45 || // -
    code === 46 || // .
    code === 95 || // _
    code === 126 || // ~
    code === 37 || // %
    code === 58 // : (a port continuing the host)
  );
}

function replaceAtBoundaries(text: string, needle: string, replacement: string): string {
  let from = text.indexOf(needle);
  if (from === -1) return text;
  let out = "";
  let last = 0;
  while (from !== -1) {
    const end = from + needle.length;
    if (end >= text.length || !continuesSegment(text.charCodeAt(end))) {
      out += text.slice(last, from) + replacement;
      last = end;
    }
    from = text.indexOf(needle, end);
  }
  return last === 0 ? text : out + text.slice(last);
}

export function createUrlRewriter(upstreamBase: string, edgeBase: string, upstreamBasePath: string): UrlRewriter {
  const escapedNeedle = upstreamBase.replaceAll("/", "\\/");
  const escapedReplacement = edgeBase.replaceAll("/", "\\/");
  return {
    rewriteText(text) {
      let out = replaceAtBoundaries(text, upstreamBase, edgeBase);
      // Only a body holding "\/" at all can hold the escaped base; most hold
      // none, and this search skips a second full scan of the rewritten text.
      if (text.includes("\\/") && out.includes(escapedNeedle)) out = replaceAtBoundaries(out, escapedNeedle, escapedReplacement);
      return out;
    },
    rewriteHeader(value) {
      if (value.startsWith(upstreamBase)) return replaceAtBoundaries(value, upstreamBase, edgeBase);
      if (value.startsWith("/") && upstreamBasePath !== "" && (value === upstreamBasePath || value.startsWith(upstreamBasePath + "/"))) {
        return edgeBase + value.slice(upstreamBasePath.length);
      }
      return value;
    },
  };
}

const rewriters = new Map<string, UrlRewriter>();

/**
 * The rewriter of one (source, edge base) pair, built once per isolate and
 * reused by every request (at most 256 pairs are kept; past that the cache
 * starts over).
 */
export function rewriterFor(source: Pick<SourceConfig, "baseUrl" | "basePath">, edgeBase: string): UrlRewriter {
  const key = `${source.baseUrl} ${edgeBase}`;
  let rewriter = rewriters.get(key);
  if (!rewriter) {
    if (rewriters.size > 256) rewriters.clear();
    rewriter = createUrlRewriter(source.baseUrl, edgeBase, source.basePath);
    rewriters.set(key, rewriter);
  }
  return rewriter;
}
