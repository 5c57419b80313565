/**
 * The circuit breaker (design.md "Protection under load"), as a pure state
 * machine: examples, then generated histories checked against a reference
 * model written as the contract states it (fast-check model-based, seeded).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { admitAttempt, CLOSED, recordResult, type BreakerSettings, type BreakerState, type BreakerTicket } from "../../../src/protection/circuit-breaker.ts";

const SEED = 20261201;
const SETTINGS: BreakerSettings = { failureThreshold: 5, windowMs: 60_000, openMs: 5_000, probeLeaseMs: 30_000 };

/** Runs one attempt through the machine: admit, then record `result` at the same moment. */
function attempt(s: BreakerState, now: number, result: "success" | "failure", settings = SETTINGS): { admitted: boolean; state: BreakerState } {
  const a = admitAttempt(s, now, settings);
  if (!a.admitted) return { admitted: false, state: a.state };
  return { admitted: true, state: recordResult(a.state, a.ticket, result, now, settings) };
}

describe("opens after 5 failures in a row", () => {
  it("stays closed through 4 failures, opens on the 5th, and refuses until circuit_open_seconds have passed", () => {
    let s = CLOSED;
    for (let i = 0; i < 4; i++) s = attempt(s, 1000 + i, "failure").state;
    expect(s.state).toBe("closed");
    s = attempt(s, 1005, "failure").state;
    expect(s).toEqual({ state: "open", until: 6005 });
    const refused = admitAttempt(s, 6004, SETTINGS);
    expect(refused).toMatchObject({ admitted: false, retryAt: 6005 });
  });

  it("a success (a 429 counts as one) breaks the run", () => {
    let s = CLOSED;
    for (let i = 0; i < 4; i++) s = attempt(s, i, "failure").state;
    s = attempt(s, 10, "success").state;
    for (let i = 0; i < 4; i++) s = attempt(s, 20 + i, "failure").state;
    expect(s.state).toBe("closed");
  });

  it("a failure more than the window after the previous one starts a new run", () => {
    let s = CLOSED;
    for (let i = 0; i < 4; i++) s = attempt(s, i * 1000, "failure").state;
    s = attempt(s, 3000 + 60_001, "failure").state;
    expect(s).toMatchObject({ state: "closed", failures: 1 });
  });

  it("a threshold of 0 never opens", () => {
    let s = CLOSED;
    for (let i = 0; i < 50; i++) s = attempt(s, i, "failure", { ...SETTINGS, failureThreshold: 0 }).state;
    expect(s.state).toBe("closed");
  });
});

describe("half-open: exactly one probe", () => {
  const open: BreakerState = { state: "open", until: 5000 };

  it("lets one probe through once open time is up, refuses the others while it runs, and closes on its success", () => {
    const probe = admitAttempt(open, 5000, SETTINGS);
    expect(probe.admitted).toBe(true);
    expect(probe.state.state).toBe("half-open");
    expect(admitAttempt(probe.state, 5001, SETTINGS).admitted).toBe(false);
    if (!probe.admitted) throw new Error("unreachable");
    expect(recordResult(probe.state, probe.ticket, "success", 5100, SETTINGS)).toEqual(CLOSED);
  });

  it("opens again when the probe fails", () => {
    const probe = admitAttempt(open, 5000, SETTINGS);
    if (!probe.admitted) throw new Error("no probe");
    expect(recordResult(probe.state, probe.ticket, "failure", 5100, SETTINGS)).toEqual({ state: "open", until: 10_100 });
  });

  it("ignores a late answer from an attempt admitted before the circuit opened", () => {
    const probe = admitAttempt(open, 5000, SETTINGS);
    const stale: BreakerTicket = {};
    expect(recordResult(probe.state, stale, "success", 5001, SETTINGS)).toBe(probe.state);
  });

  it("gives a probe that never reports back up after its lease, and a cancelled probe at once", () => {
    const probe = admitAttempt(open, 5000, SETTINGS);
    expect(admitAttempt(probe.state, 5000 + SETTINGS.probeLeaseMs, SETTINGS).admitted).toBe(true);
    if (!probe.admitted) throw new Error("no probe");
    const cancelled = recordResult(probe.state, probe.ticket, "cancelled", 5001, SETTINGS);
    expect(admitAttempt(cancelled, 5001, SETTINGS).admitted).toBe(true);
  });
});

/** The contract's words as a reference model: a run of failures, an open time, one probe at a time. */
interface Model {
  now: number;
  mode: "closed" | "open" | "half-open";
  run: number[];
  openUntil: number;
  probe: { id: number; startedAt: number } | null;
  nextId: number;
  pending: Array<{ probeId: number | null }>;
  admitted: number;
}
interface Real {
  state: BreakerState;
  pending: BreakerTicket[];
}

const settingsArb = fc.record({
  failureThreshold: fc.integer({ min: 1, max: 6 }),
  windowMs: fc.integer({ min: 100, max: 5000 }),
  openMs: fc.integer({ min: 100, max: 5000 }),
  probeLeaseMs: fc.integer({ min: 100, max: 5000 }),
});

/** Invariant: a half-open circuit has exactly one attempt out as its probe. */
function onlyOneProbe(r: Real): void {
  const s = r.state;
  if (s.state === "half-open") expect(r.pending.filter((t) => t.probeId === s.probeId)).toHaveLength(1);
}

function commands(settings: BreakerSettings) {
  class Advance implements fc.Command<Model, Real> {
    constructor(readonly ms: number) {}
    check = () => true;
    run(m: Model) {
      m.now += this.ms;
    }
    toString = () => `advance(${this.ms})`;
  }
  class Admit implements fc.Command<Model, Real> {
    check = () => true;
    run(m: Model, r: Real) {
      const a = admitAttempt(r.state, m.now, settings);
      // What the model says.
      let expected: boolean;
      if (m.mode === "closed") expected = true;
      else if (m.mode === "open") expected = m.now >= m.openUntil;
      else expected = m.probe === null || m.now >= m.probe.startedAt + settings.probeLeaseMs;
      expect(a.admitted, `admit at ${m.now} in ${m.mode}`).toBe(expected);
      r.state = a.state;
      if (!a.admitted) {
        expect(a.retryAt).toBeGreaterThan(m.now);
        return;
      }
      r.pending.push(a.ticket);
      onlyOneProbe(r);
      if (m.mode === "closed") m.pending.push({ probeId: null });
      else {
        m.mode = "half-open";
        m.probe = { id: m.nextId++, startedAt: m.now };
        m.pending.push({ probeId: m.probe.id });
      }
    }
    toString = () => "admit";
  }
  class Settle implements fc.Command<Model, Real> {
    constructor(
      readonly pick: number,
      readonly result: "success" | "failure" | "cancelled",
    ) {}
    check = (m: Readonly<Model>) => m.pending.length > 0;
    run(m: Model, r: Real) {
      const i = this.pick % m.pending.length;
      const [ticket] = r.pending.splice(i, 1);
      const [mine] = m.pending.splice(i, 1);
      r.state = recordResult(r.state, ticket!, this.result, m.now, settings);
      const isProbe = m.probe !== null && mine!.probeId === m.probe.id;
      if (m.mode === "closed" && this.result !== "cancelled") {
        if (this.result === "success") m.run = [];
        else {
          const last = m.run[m.run.length - 1];
          m.run = last !== undefined && m.now - last <= settings.windowMs ? [...m.run, m.now] : [m.now];
          if (m.run.length >= settings.failureThreshold) {
            m.mode = "open";
            m.openUntil = m.now + settings.openMs;
            m.run = [];
          }
        }
      } else if (m.mode === "half-open" && isProbe) {
        m.probe = null;
        if (this.result === "success") m.mode = "closed";
        else if (this.result === "failure") {
          m.mode = "open";
          m.openUntil = m.now + settings.openMs;
        } else {
          m.mode = "open";
          m.openUntil = m.now;
        }
      }
      expect(r.state.state, `after ${this.result} at ${m.now}`).toBe(m.mode);
      if (r.state.state === "closed") expect(r.state.failures).toBe(m.run.length);
      if (r.state.state === "open") expect(r.state.until).toBe(m.openUntil);
      onlyOneProbe(r);
    }
    toString = () => `settle(${this.pick}, ${this.result})`;
  }
  return fc.commands(
    [
      fc.integer({ min: 1, max: 3000 }).map((ms) => new Advance(ms)),
      fc.constant(new Admit()),
      fc.tuple(fc.nat(), fc.constantFrom("success" as const, "failure" as const, "failure" as const, "cancelled" as const)).map(([p, r]) => new Settle(p, r)),
    ],
    { maxCommands: 200 },
  );
}

describe("generated histories (model-based, seeded)", () => {
  it("admits, refuses and changes state exactly as the reference model, and never lets more than one probe run", () => {
    fc.assert(
      fc.property(
        settingsArb.chain((settings) => fc.tuple(fc.constant(settings), commands(settings))),
        ([, cmds]) => {
          const model: Model = { now: 1_000_000, mode: "closed", run: [], openUntil: 0, probe: null, nextId: 1, pending: [], admitted: 0 };
          const real: Real = { state: CLOSED, pending: [] };
          fc.modelRun(() => ({ model, real }), cmds);
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});
