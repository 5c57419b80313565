/**
 * Whether an `Accept` header asks for the console's HTML rather than JSON:
 * `text/html` named explicitly (not through a wildcard) with a quality above
 * zero and above any JSON type named. A browser's navigation sends
 * `text/html,...,*\/*;q=0.8`; curl and fetch send `*\/*` and get JSON.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-12.5.1
 */
export function prefersHtml(accept: string | null | undefined): boolean {
  if (!accept) return false;
  let html: number | undefined;
  let json: number | undefined;
  for (const range of accept.split(",")) {
    const [type = "", ...params] = range.split(";").map((p) => p.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!Number.isFinite(q)) continue;
    if (type === "text/html" || type === "application/xhtml+xml") html = Math.max(html ?? 0, q);
    if (type === "application/json" || type === "application/fhir+json") json = Math.max(json ?? 0, q);
  }
  return html !== undefined && html > 0 && (json === undefined || html > json);
}
