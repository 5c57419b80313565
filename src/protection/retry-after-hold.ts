/**
 * The hold an upstream asks for, as a pure state machine: a 429 or 503 with
 * `Retry-After` stops every attempt to that source (in this isolate) until
 * then; afterwards exactly one attempt goes first, and only its answer lifts
 * the hold (or renews it), so the source sees at most one request per
 * `Retry-After` it gives.
 * @see https://www.rfc-editor.org/rfc/rfc9110#field.retry-after
 * @see https://www.rfc-editor.org/rfc/rfc6585#section-4
 */

export type HoldState =
  | { held: false }
  | { held: true; status: 429 | 503; until: number; probe: { id: number; startedAt: number } | null };

export const FREE: HoldState = { held: false };

export interface HoldTicket {
  holdProbeId?: number;
}

export type HoldAdmission =
  | { admitted: true; state: HoldState; ticket: HoldTicket }
  | { admitted: false; state: HoldState; retryAt: number; status: 429 | 503 };

/** After the hold, while the first attempt is out, others are told to come back in this much. */
export const FIRST_AFTER_HOLD_RETRY_MS = 1000;

let nextId = 1;

/** Whether an attempt may go now. */
export function admitUnderHold(s: HoldState, now: number, probeLeaseMs: number): HoldAdmission {
  if (!s.held) return { admitted: true, state: s, ticket: {} };
  if (now < s.until) return { admitted: false, state: s, retryAt: s.until, status: s.status };
  if (s.probe && now < s.probe.startedAt + probeLeaseMs) {
    return { admitted: false, state: s, retryAt: now + FIRST_AFTER_HOLD_RETRY_MS, status: s.status };
  }
  const id = nextId++;
  return { admitted: true, state: { ...s, probe: { id, startedAt: now } }, ticket: { holdProbeId: id } };
}

/** What an attempt's answer says about holding. */
export type HoldResult = { kind: "hold"; status: 429 | 503; retryAfterMs: number } | { kind: "other" } | { kind: "cancelled" };

/**
 * The state after an attempt: an answer asking for a hold starts (or
 * lengthens) one, whoever sent it; the first attempt after a hold lifts it
 * with any other answer, and lets the next attempt go first when cancelled.
 */
export function recordHoldResult(s: HoldState, ticket: HoldTicket, result: HoldResult, now: number): HoldState {
  if (result.kind === "hold") {
    const until = now + result.retryAfterMs;
    if (s.held && s.probe === null && s.until >= until) return s;
    return { held: true, status: result.status, until, probe: null };
  }
  if (!s.held || !s.probe || ticket.holdProbeId !== s.probe.id) return s;
  return result.kind === "cancelled" ? { ...s, probe: null } : FREE;
}
