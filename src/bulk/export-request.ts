/**
 * Whether a request is a Bulk Data kick-off: `$export` at system level, on
 * `Patient`, or on `Group/<id>`.
 * @param segments the decoded path after the source
 * @see https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-kick-off-request
 */
export function isExportKickoff(segments: readonly string[]): boolean {
  const n = segments.length;
  if (n === 0 || segments[n - 1] !== "$export") return false;
  return n === 1 || (n === 2 && segments[0] === "Patient") || (n === 3 && segments[0] === "Group");
}

function splitTypes(value: string): string[] {
  return value
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "");
}

/**
 * The resource types a kick-off asks for: every `_type` in the query and, for
 * a POST, in its Parameters body (`valueString`, comma lists and repeats
 * alike). Undefined when none is named (the export then holds every type
 * the server has) or when the body cannot be read (the caller must then
 * assume every type).
 * @param search the raw query with its `?`, or `""`
 * @param body a POST's body text, when there is one
 * @see https://hl7.org/fhir/uv/bulkdata/export.html#query-parameters
 */
export function requestedExportTypes(search: string, body?: string): string[] | undefined {
  const types: string[] = [];
  for (const value of new URLSearchParams(search).getAll("_type")) types.push(...splitTypes(value));
  if (body !== undefined && body.trim() !== "") {
    let parameters: { resourceType?: unknown; parameter?: unknown };
    try {
      parameters = JSON.parse(body) as typeof parameters;
    } catch {
      return undefined;
    }
    if (parameters?.resourceType !== "Parameters") return undefined;
    for (const p of Array.isArray(parameters.parameter) ? parameters.parameter : []) {
      const param = p as { name?: unknown; valueString?: unknown };
      if (param?.name !== "_type") continue;
      if (typeof param.valueString !== "string") return undefined;
      types.push(...splitTypes(param.valueString));
    }
  }
  return types.length > 0 ? [...new Set(types)] : undefined;
}
