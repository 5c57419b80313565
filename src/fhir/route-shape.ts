import { RESOURCE_TYPE } from "./resource-type.ts";

/** The FHIR interaction a request is, as far as its method and path tell. */
export type Interaction =
  | "read"
  | "vread"
  | "update"
  | "patch"
  | "delete"
  | "create"
  | "search"
  | "history"
  | "operation"
  | "batch"
  | "capabilities"
  | "other";

export interface RouteShape {
  /** For logs: the path with ids replaced, e.g. `Patient/{id}/_history/{vid}`. Never a value. */
  shape: string;
  interaction: Interaction;
  /** The resource type the interaction targets, when the path names one. */
  resourceType?: string;
  /** read, vread, create, update, patch, delete: one resource whose body passes through untouched. */
  singleResource: boolean;
}


/**
 * Classifies a FHIR REST request by method and decoded path segments.
 * @see https://hl7.org/fhir/R4/http.html
 */
export function routeShape(method: string, segments: readonly string[]): RouteShape {
  const shape = segments
    .map((s, i) => {
      if (s.startsWith("$") || s.startsWith("_") || s === "metadata" || RESOURCE_TYPE.test(s)) return s;
      return segments[i - 1] === "_history" ? "{vid}" : "{id}";
    })
    .join("/");
  const [first, second, third, fourth] = segments;
  const resourceType = first !== undefined && RESOURCE_TYPE.test(first) ? first : undefined;
  const op = segments.find((s) => s.startsWith("$"));
  const base = { shape: shape === "" ? "/" : shape, ...(resourceType ? { resourceType } : {}) };

  if (op) return { ...base, interaction: "operation", singleResource: false };
  if (segments.length === 0) {
    return { ...base, interaction: method === "POST" ? "batch" : "search", singleResource: false };
  }
  if (first === "metadata" && segments.length === 1) return { ...base, interaction: "capabilities", singleResource: false };
  if (first === "_history" || second === "_history" && segments.length === 2 || third === "_history" && segments.length === 3) {
    return { ...base, interaction: "history", singleResource: false };
  }
  if (!resourceType) return { ...base, interaction: "other", singleResource: false };
  if (segments.length === 1) {
    if (method === "GET" || method === "HEAD") return { ...base, interaction: "search", singleResource: false };
    if (method === "POST") return { ...base, interaction: "create", singleResource: true };
    if (method === "PUT") return { ...base, interaction: "update", singleResource: true };
    if (method === "PATCH") return { ...base, interaction: "patch", singleResource: true };
    return { ...base, interaction: "delete", singleResource: true };
  }
  if (segments.length === 2 && second === "_search") return { ...base, interaction: "search", singleResource: false };
  if (segments.length === 2) {
    const interaction = method === "PUT" ? "update" : method === "PATCH" ? "patch" : method === "DELETE" ? "delete" : "read";
    return { ...base, interaction, singleResource: true };
  }
  if (segments.length === 4 && third === "_history" && fourth !== undefined) return { ...base, interaction: "vread", singleResource: true };
  if (segments.length === 3 && third !== undefined && RESOURCE_TYPE.test(third)) {
    // A compartment search: Patient/123/Observation. Its type is the one searched.
    return { ...base, resourceType: third, interaction: "search", singleResource: false };
  }
  return { ...base, interaction: "other", singleResource: false };
}
