/**
 * The small subset of FHIR R4/R5 shapes the edge reads or writes. Kept by hand
 * so the Worker bundle carries no type package at run time.
 * @see https://hl7.org/fhir/R4/resourcelist.html
 */

export type IssueSeverity = "fatal" | "error" | "warning" | "information";

/** @see https://hl7.org/fhir/R4/valueset-issue-type.html */
export type IssueType =
  | "invalid"
  | "structure"
  | "required"
  | "value"
  | "security"
  | "login"
  | "unknown"
  | "expired"
  | "forbidden"
  | "processing"
  | "not-supported"
  | "not-found"
  | "too-costly"
  | "exception"
  | "timeout"
  | "throttled"
  | "transient"
  | "incomplete"
  | "informational";

export interface Coding {
  system?: string;
  code?: string;
  display?: string;
}

export interface CodeableConcept {
  coding?: Coding[];
  text?: string;
}

export interface Extension {
  url: string;
  valueUri?: string;
  valueUrl?: string;
  valueString?: string;
  extension?: Extension[];
}

export interface OperationOutcomeIssue {
  severity: IssueSeverity;
  code: IssueType;
  details?: CodeableConcept;
  diagnostics?: string;
  expression?: string[];
}

export interface OperationOutcome extends Resource {
  resourceType: "OperationOutcome";
  issue: OperationOutcomeIssue[];
}

export interface Resource {
  resourceType: string;
  id?: string;
  [key: string]: unknown;
}

export interface BundleLink {
  relation: string;
  url: string;
}

export interface BundleEntry {
  fullUrl?: string;
  resource?: Resource;
  search?: { mode?: "match" | "include" | "outcome"; score?: number };
  request?: { method: string; url: string };
  response?: { status: string; location?: string; etag?: string; lastModified?: string; outcome?: Resource };
  [key: string]: unknown;
}

export interface Bundle {
  resourceType: "Bundle";
  id?: string;
  type: string;
  total?: number;
  link?: BundleLink[];
  entry?: BundleEntry[];
  [key: string]: unknown;
}

export interface CapabilityStatementRestSecurity {
  cors?: boolean;
  service?: CodeableConcept[];
  description?: string;
  extension?: Extension[];
}

export interface CapabilityStatement extends Resource {
  resourceType: "CapabilityStatement";
  rest?: Array<{ mode: string; security?: CapabilityStatementRestSecurity; [key: string]: unknown }>;
  implementation?: { description?: string; url?: string };
  software?: { name: string; version?: string };
}

export const FHIR_JSON = "application/fhir+json; charset=utf-8";
