import type { SourceConfig } from "../config/types.ts";

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

// The keys the JSON scan tells apart, as small numbers kept in the scan's frame stack; any other key is NO_KEY.
const NO_KEY = 0;
const RESOURCE_TYPE = 1;
const URL_KEY = 2;
const FULL_URL = 3;
const LOCATION = 4;
const LINK = 5;
const ENTRY = 6;
const RESPONSE = 7;
const KEY_IDS: Readonly<Record<string, number>> = { resourceType: RESOURCE_TYPE, url: URL_KEY, fullUrl: FULL_URL, location: LOCATION, link: LINK, entry: ENTRY, response: RESPONSE };

/** The key spelled by `text[from, to)` without escapes, if it is one the scan tells apart; by length first, since most keys are none. */
function keyAt(text: string, from: number, to: number): number {
  switch (to - from) {
    case 3:
      return text.startsWith("url", from) ? URL_KEY : NO_KEY;
    case 4:
      return text.startsWith("link", from) ? LINK : NO_KEY;
    case 5:
      return text.startsWith("entry", from) ? ENTRY : NO_KEY;
    case 7:
      return text.startsWith("fullUrl", from) ? FULL_URL : NO_KEY;
    case 8:
      return text.startsWith("location", from) ? LOCATION : text.startsWith("response", from) ? RESPONSE : NO_KEY;
    case 12:
      return text.startsWith("resourceType", from) ? RESOURCE_TYPE : NO_KEY;
    default:
      return NO_KEY;
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

/** An escaped key, decoded, as the scan's number for it. */
function escapedKey(text: string, quote: number, end: number): number {
  const key = decodeJsonString(text, quote, end);
  return key !== undefined && Object.hasOwn(KEY_IDS, key) ? KEY_IDS[key]! : NO_KEY;
}

/**
 * The object owning a Bundle URL field (key `key`) read in the frame at `top`, as
 * its frame id, if the frames have that shape (`link[].url`, `entry[].fullUrl`,
 * `entry[].response.location`); -1 otherwise. The owner counts only if it is a Bundle.
 */
function ownerOf(frames: number[], frameIds: number[], key: number, top: number): number {
  if (key === LOCATION) {
    // top: {location}, top-1: the entry {response}, top-2: entry[], top-3: the Bundle {entry}.
    return top >= 3 && frames[top - 1] === RESPONSE << 1 && frames[top - 2]! & 1 && frames[top - 3] === ENTRY << 1 ? frameIds[top - 3]! : -1;
  }
  // top: {url} or {fullUrl}, top-1: link[] or entry[], top-2: the Bundle {link} or {entry}.
  return top >= 2 && frames[top - 1]! & 1 && frames[top - 2] === (key === URL_KEY ? LINK : ENTRY) << 1 ? frameIds[top - 2]! : -1;
}

/**
 * A string token the scan reads the same way and never gives up on: one
 * without a backslash, or one whose escapes are all valid (`JSON.parse` takes
 * it); a `\u` escape is not here: the scan reads a stretch holding one token by token.
 * The two alternatives never both match, so a failed match backtracks in linear time.
 */
const SKIP_STRING = String.raw`"[^"\\]*"|"[^"\\\x00-\x1f]*(?:\\["\\/bfnrt][^"\\\x00-\x1f]*)+"`;
/** How deep an object or array may nest for {@link SKIP_VALUE} to skip it at once; a deeper one is scanned. */
const SKIP_DEPTH = 6;
function nestedValue(depth: number): string {
  // Runs of other characters between tokens, unrolled (`R(?:TR)*`) so a failed match backtracks in linear time.
  const run = String.raw`[^"{}\[\]]*`;
  const tokens = `${run}(?:(?:${SKIP_STRING}${depth === 0 ? "" : `|${nestedValue(depth - 1)}`})${run})*`;
  return String.raw`\{${tokens}\}|\[${tokens}\]`;
}
/**
 * A whole object or array, brackets matched, nested at most {@link SKIP_DEPTH}
 * deep: where it holds no upstream URL, the scan skips it natively (one regex
 * test for a resource of a searchset, not one step per token), since nothing
 * in it can change the result but a malformed token, which this never matches.
 */
const SKIP_VALUE = new RegExp(`(?:${nestedValue(SKIP_DEPTH)})`, "y");
/** A value is only tried with {@link SKIP_VALUE} when this many characters before the next possible URL are free of it. */
const SKIP_MIN = 256;
/** How far one try of {@link SKIP_VALUE} looks: a longer value (a huge array) is scanned, which is faster there than the regex's backtracking. */
const SKIP_MAX = 16384;

/**
 * The Bundle URL fields of JSON text that start with `base`, as `[start, end, decoded value]`
 * of their string tokens (quotes included); undefined when the text is not well-formed JSON.
 * A field counts only in an object whose `resourceType` is `Bundle`, wherever that key sits.
 *
 * One pass: a whole object or array holding no possible URL (a searchset's
 * resource) is skipped by one native regex test ({@link SKIP_VALUE}); elsewhere
 * strings are skipped natively (`indexOf`) and only the structure between them
 * is tracked, in a stack of numbers. A URL field's token is kept with its
 * owner's id, and the owners found to be Bundles decide at the end.
 */
function bundleUrlTokens(text: string, base: string): Array<[number, number, string]> | undefined {
  // Every string token decoding to a value that starts with the base holds the
  // base's authority as written (JSON escapes a `/` at most) or a `\u` escape;
  // an authority JSON could escape otherwise is not looked for, and nothing is skipped.
  const authority = base.split("/")[2] ?? "";
  /*
   * One number per open object or array: bit 0 is set for an array, the bits
   * above hold the key (of an object) whose value is read now; and which
   * object or array of the text it is, counted from 0, so a URL field's owner
   * can be named after its frame is gone. Numbers, so no token allocates.
   */
  const frames: number[] = [];
  const frameIds: number[] = [];
  const candidates: Array<[number, number, string]> = [];
  const owners: number[] = [];
  const bundles: number[] = [];
  const n = text.length;
  const baseLength = base.length;
  let depth = 0;
  let nextId = 0;
  let expectKey = false;
  let nextBackslash = 0;
  // Where the next occurrence of the authority and of `\u` start (past n: none), and how far no value is tried for a skip.
  let nextAuthority = -1;
  let nextUnicode = -1;
  let noSkipUntil = /^[^"\\\x00-\x1f]+$/.test(authority) ? 0 : n;
  /** Whether the object or array opening at `from` is skipped whole (SKIP_VALUE.lastIndex + from: its end); each stretch free of URLs is tried at most until one fails, so the scan stays linear. */
  const skips = (from: number): boolean => {
    if (nextAuthority < from) nextAuthority = text.indexOf(authority, from) >>> 0; // -1 (none) as 2^32 - 1
    if (nextUnicode < from) nextUnicode = text.indexOf("\\u", from) >>> 0;
    const free = Math.min(nextAuthority, nextUnicode, n, from + SKIP_MAX);
    if (free - from < SKIP_MIN) return false;
    SKIP_VALUE.lastIndex = 0;
    if (SKIP_VALUE.test(text.slice(from, free))) return true;
    noSkipUntil = free;
    return false;
  };
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // A string: its end is the next quote not escaped by an odd run of backslashes (found natively, not char by char).
      let j = text.indexOf('"', i + 1);
      for (;;) {
        if (j === -1) return undefined;
        if (text.charCodeAt(j - 1) !== 92) break;
        let slashes = 1;
        while (text.charCodeAt(j - 1 - slashes) === 92) slashes++;
        if (slashes % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      // Only a few keys and values matter; the others are skipped without making a string of them.
      if (depth !== 0) {
        const top = depth - 1;
        const frame = frames[top]!;
        if ((frame & 1) === 0) {
          // The next backslash is looked up once and kept until passed, so a scan stays linear.
          if (nextBackslash !== -1 && nextBackslash <= i) nextBackslash = text.indexOf("\\", i + 1);
          const escaped = nextBackslash !== -1 && nextBackslash < j;
          if (expectKey) {
            frames[top] = (escaped ? escapedKey(text, i, j) : keyAt(text, i + 1, j)) << 1;
            expectKey = false;
          } else {
            const key = frame >> 1;
            if (key === RESOURCE_TYPE) {
              if (escaped ? decodeJsonString(text, i, j) === "Bundle" : j - i - 1 === 6 && text.startsWith("Bundle", i + 1)) bundles.push(frameIds[top]!);
            } else if (key === URL_KEY || key === FULL_URL || key === LOCATION) {
              let value: string | undefined;
              if (escaped) {
                value = decodeJsonString(text, i, j);
                if (value === undefined) return undefined;
                if (!startsWithBase(value, base)) value = undefined;
              } else if (i + 1 + baseLength <= j && text.startsWith(base, i + 1)) {
                const next = i + 1 + baseLength === j ? 47 : text.charCodeAt(i + 1 + baseLength);
                if (next === 47 || next === 63 || next === 35) value = text.slice(i + 1, j); // / ? #
              }
              if (value !== undefined) {
                const owner = ownerOf(frames, frameIds, key, top);
                if (owner !== -1) {
                  candidates.push([i, j + 1, value]);
                  owners.push(owner);
                }
              }
            }
          }
        }
      }
      i = j + 1;
    } else if ((c === 123 || c === 91) && i >= noSkipUntil && skips(i)) {
      i += SKIP_VALUE.lastIndex;
      expectKey = false; // as after its closing bracket
    } else if (c === 123 || c === 91) {
      frames[depth] = c === 91 ? 1 : 0;
      frameIds[depth] = nextId++;
      depth++;
      expectKey = c === 123;
      i++;
    } else if (c === 125 || c === 93) {
      if (depth === 0 || (frames[depth - 1]! & 1) !== (c === 93 ? 1 : 0)) return undefined;
      depth--;
      expectKey = false;
      i++;
    } else if (c === 44) {
      if (depth === 0) return undefined;
      expectKey = (frames[depth - 1]! & 1) === 0;
      i++;
    } else i++; // `:`, whitespace, numbers, true, false, null
  }
  if (depth !== 0) return undefined;
  if (candidates.length === 0 || bundles.length === 0) return [];
  const isBundle = new Set(bundles);
  return candidates.filter((_, k) => isBundle.has(owners[k]!));
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

const rewriters = new Map<string, UrlRewriter>();

/**
 * The rewriter of one (source, edge base) pair, built once per isolate and
 * reused by every request (at most 256 pairs are kept; past that the cache
 * starts over).
 */
export function rewriterFor(source: Pick<SourceConfig, "baseUrl" | "basePath" | "rewriteBodies">, edgeBase: string): UrlRewriter {
  const key = `${source.rewriteBodies} ${source.baseUrl} ${edgeBase}`;
  let rewriter = rewriters.get(key);
  if (!rewriter) {
    if (rewriters.size > 256) rewriters.clear();
    rewriter = createUrlRewriter(source.baseUrl, edgeBase, source.basePath, source.rewriteBodies);
    rewriters.set(key, rewriter);
  }
  return rewriter;
}
