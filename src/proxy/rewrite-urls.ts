/**
 * Rewrites the upstream's absolute base URL into the edge's, in the places
 * section 3 of the contract names: `Location` / `Content-Location`, and in a
 * body Bundle `link[].url`, `entry[].fullUrl` and `entry[].response.location`
 * (a batch entry's Location), nested Bundles included. Nothing else in a body
 * changes, byte for byte: an identifier system, a reference or a narrative
 * that holds the upstream URL is data, not a link the client follows through
 * the edge. `rewrite_bodies=all` asks for every occurrence instead.
 *
 * Bodies are scanned, not parsed and serialised again, so numbers, escapes
 * and whitespace stay as the upstream wrote them; a match must end at a URL
 * boundary, so base `https://h/fhir` never rewrites `https://h/fhir2/...`.
 * JSON's optional `\/` escaping is handled too.
 * @see docs/proxy.md#url-rewriting
 */
export interface UrlRewriter {
  /** A body by the source's rule (`rewrite_bodies`); returns `text` itself when nothing changes. */
  rewriteText(text: string): string;
  /** Every occurrence of the base at a URL boundary: `rewrite_bodies=all`, and the edge's own discovery documents. */
  rewriteEverywhere(text: string): string;
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

/** Whether `value` is the base itself or starts with it and then `/`, `?` or `#`. */
function startsWithBase(value: string, base: string): boolean {
  if (!value.startsWith(base)) return false;
  const next = value.charCodeAt(base.length);
  return value.length === base.length || next === 47 || next === 63 || next === 35; // / ? #
}

/** Where a URL field of a Bundle sits: the key of the string, then the keys above it, `[]` for an array. */
const BUNDLE_URL_FIELDS = [
  ["url", "[]", "link"],
  ["fullUrl", "[]", "entry"],
  ["location", "response", "[]", "entry"],
] as const;

/** The keys the JSON scan tells apart; any other key is `undefined`. */
const KEYS = ["resourceType", "url", "fullUrl", "location", "link", "entry", "response"];

/** The key spelled by `text[from, to)` without escapes, if it is one of {@link KEYS}; by length first, since most keys are none. */
function keyAt(text: string, from: number, to: number): string | undefined {
  switch (to - from) {
    case 3:
      return text.startsWith("url", from) ? "url" : undefined;
    case 4:
      return text.startsWith("link", from) ? "link" : undefined;
    case 5:
      return text.startsWith("entry", from) ? "entry" : undefined;
    case 7:
      return text.startsWith("fullUrl", from) ? "fullUrl" : undefined;
    case 8:
      return text.startsWith("location", from) ? "location" : text.startsWith("response", from) ? "response" : undefined;
    case 12:
      return text.startsWith("resourceType", from) ? "resourceType" : undefined;
    default:
      return undefined;
  }
}

/** The JSON string token `text[quote, end]` (both quotes), decoded; undefined when it is not valid JSON. */
function decodeJsonString(text: string, quote: number, end: number): string | undefined {
  try {
    return JSON.parse(text.slice(quote, end + 1)) as string;
  } catch {
    return undefined;
  }
}

interface JsonFrame {
  array: boolean;
  /** The key whose value is being read (objects). */
  key: string | undefined;
  isBundle: boolean;
  /** String tokens in a Bundle URL field whose Bundle is this object, if it turns out to be one. */
  pending: Array<[start: number, end: number, value: string]> | undefined;
}

/**
 * The Bundle URL fields of JSON text that start with `base`, as `[start, end, decoded value]`
 * of their string tokens (quotes included); undefined when the text is not well-formed JSON.
 * A field counts only in an object whose `resourceType` is `Bundle`, wherever that key sits.
 */
function bundleUrlTokens(text: string, base: string): Array<[number, number, string]> | undefined {
  const found: Array<[number, number, string]> = [];
  const stack: JsonFrame[] = [];
  let expectKey = false;
  let nextBackslash = 0;
  let i = 0;
  const n = text.length;
  /** The object owning a Bundle URL field whose string value is read now, if the stack has that shape. */
  const owner = (): JsonFrame | undefined => {
    for (const shape of BUNDLE_URL_FIELDS) {
      let depth = stack.length - 1;
      let ok = true;
      for (const part of shape) {
        const frame = stack[depth];
        if (!frame || (part === "[]" ? !frame.array : frame.array || frame.key !== part)) {
          ok = false;
          break;
        }
        depth--;
      }
      // The last part is the key in the Bundle itself.
      if (ok) return stack[depth + 1];
    }
    return undefined;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // A string: its end is the next quote not escaped by an odd run of backslashes (found natively, not char by char).
      let j = text.indexOf('"', i + 1);
      for (;;) {
        if (j === -1) return undefined;
        let slashes = 0;
        while (text.charCodeAt(j - 1 - slashes) === 92) slashes++;
        if (slashes % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      // The next backslash is looked up once and kept until passed, so a scan stays linear.
      if (nextBackslash !== -1 && nextBackslash <= i) nextBackslash = text.indexOf("\\", i + 1);
      const escaped = nextBackslash !== -1 && nextBackslash < j;
      // Only a few keys and values matter; the others are skipped without making a string of them.
      const top = stack.at(-1);
      if (top === undefined || top.array) {
        // An array item or a top-level string: never a key, never a URL field.
      } else if (expectKey) {
        top.key = escaped ? KEYS.find((k) => k === decodeJsonString(text, i, j)) : keyAt(text, i + 1, j);
        expectKey = false;
      } else if (top.key === "resourceType") {
        if (escaped ? decodeJsonString(text, i, j) === "Bundle" : j - i - 1 === 6 && text.startsWith("Bundle", i + 1)) top.isBundle = true;
      } else if (top.key === "url" || top.key === "fullUrl" || top.key === "location") {
        const value = escaped ? decodeJsonString(text, i, j) : text.slice(i + 1, j);
        if (value === undefined) return undefined;
        if (startsWithBase(value, base)) {
          const bundle = owner();
          if (bundle) (bundle.pending ??= []).push([i, j + 1, value]);
        }
      }
      i = j + 1;
    } else if (c === 123 || c === 91) {
      stack.push({ array: c === 91, key: undefined, isBundle: false, pending: undefined });
      expectKey = c === 123;
      i++;
    } else if (c === 125 || c === 93) {
      const frame = stack.pop();
      if (!frame || frame.array !== (c === 93)) return undefined;
      if (frame.isBundle && frame.pending) found.push(...frame.pending);
      expectKey = false;
      i++;
    } else if (c === 44) {
      const top = stack.at(-1);
      if (!top) return undefined;
      expectKey = !top.array;
      i++;
    } else i++; // `:`, whitespace, numbers, true, false, null
  }
  return stack.length === 0 ? found.sort((a, b) => a[0] - b[0]) : undefined;
}

/** How many characters of a JSON string's raw text spell `base` when some of it is escaped (`https:\/\/h/fhir`, `\u0068ttps`). */
function escapedPrefixLength(raw: string, base: string): number {
  for (let p = base.length; p <= raw.length; p++) {
    try {
      if (JSON.parse(`"${raw.slice(0, p)}"`) === base) return p;
    } catch {
      // p splits an escape: try one more character.
    }
  }
  return raw.length;
}

function rewriteJsonBundles(text: string, base: string, edgeBase: string): string {
  const tokens = bundleUrlTokens(text, base);
  if (!tokens || tokens.length === 0) return text;
  const escapedBase = base.replaceAll("/", "\\/");
  let out = "";
  let last = 0;
  for (const [start, end, value] of tokens) {
    const raw = text.slice(start + 1, end - 1);
    // Keep the rest of the string as the upstream escaped it.
    const token = raw.startsWith(base)
      ? `"${edgeBase}${raw.slice(base.length)}"`
      : raw.startsWith(escapedBase)
        ? `"${edgeBase.replaceAll("/", "\\/")}${raw.slice(escapedBase.length)}"`
        : `"${edgeBase}${raw.slice(escapedPrefixLength(raw, base))}"`;
    out += text.slice(last, start) + token;
    last = end;
  }
  return out + text.slice(last);
}

const XML_TAG = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<[?!][\s\S]*?>|<(\/?)(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g;
const VALUE_ATTRIBUTE = /(\svalue\s*=\s*)(["'])([^"']*)\2/;
const XML_ENTITY = /&(?:#x([0-9a-f]+)|#(\d+)|(amp|lt|gt|quot|apos));/gi;
const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function xmlUnescape(text: string): string {
  return text.replace(XML_ENTITY, (_, hex: string | undefined, dec: string | undefined, name: string | undefined) =>
    hex ? String.fromCodePoint(parseInt(hex, 16)) : dec ? String.fromCodePoint(parseInt(dec, 10)) : NAMED[name!.toLowerCase()]!,
  );
}

function xmlEscape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

/** FHIR XML: the `value` attribute of Bundle/link/url, Bundle/entry/fullUrl and Bundle/entry/response/location. */
function rewriteXmlBundles(text: string, base: string, edgeBase: string): string {
  const stack: string[] = [];
  let out = "";
  let last = 0;
  const under = (...path: string[]) => stack.length >= path.length && path.every((p, k) => stack[stack.length - path.length + k] === p);
  for (const m of text.matchAll(XML_TAG)) {
    const [tag, closing, name, attributes, selfClosing] = m;
    if (name === undefined) continue;
    if (closing) {
      if (stack.at(-1) === name) stack.pop();
      continue;
    }
    if ((name === "url" && under("Bundle", "link")) || (name === "fullUrl" && under("Bundle", "entry")) || (name === "location" && under("Bundle", "entry", "response"))) {
      const attribute = VALUE_ATTRIBUTE.exec(attributes!);
      const value = attribute ? xmlUnescape(attribute[3]!) : undefined;
      if (attribute && value !== undefined && startsWithBase(value, base)) {
        const raw = attribute[3]!;
        const escapedBase = xmlEscape(base);
        const replaced = raw.startsWith(escapedBase) ? xmlEscape(edgeBase) + raw.slice(escapedBase.length) : xmlEscape(edgeBase + value.slice(base.length));
        const at = m.index + tag.length - attributes!.length - selfClosing!.length - 1 + attribute.index + attribute[1]!.length + 1;
        out += text.slice(last, at) + replaced;
        last = at + raw.length;
      }
    }
    if (!selfClosing) stack.push(name);
  }
  return last === 0 ? text : out + text.slice(last);
}

/**
 * @param scope `bundles`: the contract's rule for bodies; `all`: every occurrence (`rewrite_bodies=all`)
 */
export function createUrlRewriter(upstreamBase: string, edgeBase: string, upstreamBasePath: string, scope: "bundles" | "all" = "bundles"): UrlRewriter {
  const escapedNeedle = upstreamBase.replaceAll("/", "\\/");
  const escapedReplacement = edgeBase.replaceAll("/", "\\/");
  // The host survives any escaping of slashes; a body without it (and without \u escapes) holds no upstream URL.
  const host = new URL(upstreamBase).host;
  const rewriteEverywhere = (text: string): string => {
    let out = replaceAtBoundaries(text, upstreamBase, edgeBase);
    // Only a body holding "\/" at all can hold the escaped base; most hold
    // none, and this search skips a second full scan of the rewritten text.
    if (text.includes("\\/") && out.includes(escapedNeedle)) out = replaceAtBoundaries(out, escapedNeedle, escapedReplacement);
    return out;
  };
  return {
    rewriteText(text) {
      if (scope === "all") return rewriteEverywhere(text);
      // No occurrence at all (raw or escaped): nothing to scan.
      if (!text.includes(host) && !text.includes("\\u")) return text;
      const first = text.trimStart().charCodeAt(0);
      if (first === 123) return rewriteJsonBundles(text, upstreamBase, edgeBase); // {
      if (first === 60) return rewriteXmlBundles(text, upstreamBase, edgeBase); // <
      return text;
    },
    rewriteEverywhere,
    rewriteHeader(value) {
      // Only the URL's own base: a base inside its query is a value, not where it points.
      if (startsWithBase(value, upstreamBase)) return edgeBase + value.slice(upstreamBase.length);
      if (value.startsWith("/") && !value.startsWith("//") && (upstreamBasePath === "" || value === upstreamBasePath || startsWithBase(value, upstreamBasePath))) {
        return edgeBase + value.slice(upstreamBasePath.length);
      }
      return value;
    },
  };
}
