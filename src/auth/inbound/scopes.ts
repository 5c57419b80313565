import type { Interaction } from "../../fhir/route-shape.ts";

/** A SMART permission: create, read, update, delete, search. */
export type Permission = "c" | "r" | "u" | "d" | "s";

/** One granted scope: a resource type (or `*`) and its permissions. */
export interface ScopeGrant {
  resourceType: string;
  permissions: ReadonlySet<Permission>;
}

const V1: Record<string, Permission[]> = { read: ["r", "s"], write: ["c", "u", "d"], "*": ["c", "r", "u", "d", "s"] };
const SCOPE = /^system\/([A-Za-z]+|\*)\.([a-z*]+)$/;

/**
 * Parses the `system/` scopes of a token, SMART v2 (`system/Patient.rs`) and
 * v1 (`system/*.read`, `.write`, `.*`). `patient/` and `user/` scopes grant
 * nothing here (the edge has no launch context to bound them), nor do
 * granular scopes with a query (`system/Observation.rs?category=...`): both
 * fail closed.
 * @see https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
 */
export function parseScopes(scope: string | readonly string[] | undefined): ScopeGrant[] {
  const list = typeof scope === "string" ? scope.split(/\s+/) : (scope ?? []);
  const grants: ScopeGrant[] = [];
  for (const s of list) {
    const match = SCOPE.exec(s);
    if (!match) continue;
    const [, resourceType, perms] = match as unknown as [string, string, string];
    const v1 = V1[perms];
    if (v1) {
      grants.push({ resourceType, permissions: new Set(v1) });
    } else if (/^c?r?u?d?s?$/.test(perms) && perms !== "") {
      grants.push({ resourceType, permissions: new Set(perms.split("") as Permission[]) });
    }
  }
  return grants;
}

export function allows(grants: readonly ScopeGrant[], resourceType: string, permission: Permission): boolean {
  return grants.some((g) => (g.resourceType === "*" || g.resourceType === resourceType) && g.permissions.has(permission));
}

/**
 * What an interaction needs, per SMART v2: `c` type create; `r` read, vread,
 * instance history; `u` update, patch; `d` delete; `s` type and system search
 * and history. Operations (`$...`) need `r` and `s` on their type (`*` at
 * system level). Anything the edge cannot classify needs every permission on
 * every type.
 * @returns pairs of resource type (or `*`) and permission
 */
export function requiredPermissions(interaction: Interaction, resourceType: string | undefined, instance: boolean): Array<[string, Permission]> {
  const type = resourceType ?? "*";
  switch (interaction) {
    case "read":
    case "vread":
      return [[type, "r"]];
    case "create":
      return [[type, "c"]];
    case "update":
    case "patch":
      return [[type, "u"]];
    case "delete":
      return [[type, "d"]];
    case "search":
      return [[type, "s"]];
    case "history":
      return [[type, instance ? "r" : "s"]];
    case "operation":
      return [
        [type, "r"],
        [type, "s"],
      ];
    case "capabilities":
      return [];
    case "batch":
      return [];
    default:
      return (["c", "r", "u", "d", "s"] as Permission[]).map((p) => ["*", p]);
  }
}

/**
 * What a Bulk Data kick-off needs: read (`r` and `s`, v1 `.read`) on every
 * type it exports, and on every type (`*`) when `_type` names none, since the
 * export then holds all of them.
 * @param types the `_type` values, or undefined for all types
 * @see https://hl7.org/fhir/uv/bulkdata/authorization.html
 */
export function bulkExportPermissions(types: readonly string[] | undefined): Array<[string, Permission]> {
  return (types ?? ["*"]).flatMap((type): Array<[string, Permission]> => [
    [type, "r"],
    [type, "s"],
  ]);
}
