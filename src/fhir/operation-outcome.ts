import type { IssueType, OperationOutcome } from "./types.ts";

/** The system of the edge's stable error codes, carried in `issue.details`. */
export const ERROR_CODE_SYSTEM = "https://github.com/fhir-edge/fhir-edge/error-codes";

export interface OutcomeInput {
  issueCode: IssueType;
  /** Stable machine-readable code, e.g. `source-not-found`. */
  code: string;
  message: string;
  requestId?: string;
  /** FHIRPath-ish location of the fault, e.g. the config field. */
  expression?: string[];
  severity?: "error" | "fatal" | "warning" | "information";
}

/**
 * Builds a one-issue OperationOutcome. The request id goes into `diagnostics`
 * so a user can quote it to whoever reads the logs.
 * @see https://hl7.org/fhir/R4/operationoutcome.html
 */
export function operationOutcome(input: OutcomeInput): OperationOutcome {
  const diagnostics = input.requestId ? `${input.message} (request id ${input.requestId})` : input.message;
  return {
    resourceType: "OperationOutcome",
    issue: [
      {
        severity: input.severity ?? "error",
        code: input.issueCode,
        details: { coding: [{ system: ERROR_CODE_SYSTEM, code: input.code }], text: input.message },
        diagnostics,
        ...(input.expression ? { expression: input.expression } : {}),
      },
    ],
  };
}
