/**
 * A circuit breaker for one source, as a pure state machine: functions take
 * the state and the time and return the next state. The caller (one
 * {@link SourceGuard} per source and isolate) keeps the state.
 *
 * - closed: every attempt goes; `failureThreshold` failures in a row, each
 *   within `windowMs` of the one before, open the circuit.
 * - open: nothing goes until `openMs` after it opened.
 * - half-open: exactly one attempt (the probe) goes; its success closes the
 *   circuit, its failure opens it again. A probe that never reports back (its
 *   request was cancelled) is given up after `probeLeaseMs`, and the next
 *   attempt becomes the probe.
 * @see https://martinfowler.com/bliki/CircuitBreaker.html
 */

export interface BreakerSettings {
  /** Failures in a row that open the circuit; 0 turns the breaker off. */
  failureThreshold: number;
  /** A failure more than this after the previous one starts a new run. */
  windowMs: number;
  /** How long the circuit stays open before one probe may go. */
  openMs: number;
  /** How long a probe may take before another attempt may probe instead. */
  probeLeaseMs: number;
}

export type BreakerState =
  | { state: "closed"; failures: number; lastFailureAt: number }
  | { state: "open"; until: number }
  | { state: "half-open"; probeId: number; probeStartedAt: number };

/** What the attempt counts as: an answer below 500 (a 429 included) is a success; 5xx, timeouts and unreachable are failures. */
export type BreakerResult = "success" | "failure" | "cancelled";

/** Given to an admitted attempt and handed back with its result. */
export interface BreakerTicket {
  probeId?: number;
}

export type BreakerAdmission =
  | { admitted: true; state: BreakerState; ticket: BreakerTicket }
  | { admitted: false; state: BreakerState; retryAt: number };

export const CLOSED: BreakerState = { state: "closed", failures: 0, lastFailureAt: 0 };

/** While a probe is out, others are told to come back in this much. */
export const PROBING_RETRY_MS = 1000;

let nextProbeId = 1;

/** Whether an attempt may go now, and the state after deciding. */
export function admitAttempt(s: BreakerState, now: number, settings: BreakerSettings): BreakerAdmission {
  switch (s.state) {
    case "closed":
      return { admitted: true, state: s, ticket: {} };
    case "open":
      if (now < s.until) return { admitted: false, state: s, retryAt: s.until };
      return probe(now);
    case "half-open":
      if (now < s.probeStartedAt + settings.probeLeaseMs) return { admitted: false, state: s, retryAt: now + PROBING_RETRY_MS };
      return probe(now);
  }
}

function probe(now: number): BreakerAdmission {
  const probeId = nextProbeId++;
  return { admitted: true, state: { state: "half-open", probeId, probeStartedAt: now }, ticket: { probeId } };
}

/**
 * The state after an admitted attempt's result. A result from an attempt
 * admitted before the circuit opened, or from a probe given up, changes
 * nothing: only the current probe decides a half-open circuit.
 */
export function recordResult(s: BreakerState, ticket: BreakerTicket, result: BreakerResult, now: number, settings: BreakerSettings): BreakerState {
  if (result === "cancelled") {
    // A cancelled probe proved nothing: let the next attempt probe at once.
    if (s.state === "half-open" && ticket.probeId === s.probeId) return { state: "open", until: now };
    return s;
  }
  switch (s.state) {
    case "closed": {
      if (result === "success") return s.failures === 0 ? s : CLOSED;
      if (settings.failureThreshold === 0) return s;
      const failures = s.failures > 0 && now - s.lastFailureAt <= settings.windowMs ? s.failures + 1 : 1;
      if (failures >= settings.failureThreshold) return { state: "open", until: now + settings.openMs };
      return { state: "closed", failures, lastFailureAt: now };
    }
    case "open":
      return s;
    case "half-open":
      if (ticket.probeId !== s.probeId) return s;
      return result === "success" ? CLOSED : { state: "open", until: now + settings.openMs };
  }
}
