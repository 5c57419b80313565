/**
 * The inbox's logic (docs/inbox.md) without a server: stand-in sockets that keep their
 * attachment as the runtime does (a structured clone), an in-memory feed, an injected clock.
 * "Hibernation" is a new Inbox over the same sockets: the inbox keeps nothing in memory.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CLOSE_POLICY, CLOSE_SLOW_CLIENT, Inbox, inboxFrame, parseAck, type InboxFeed, type InboxNotification, type InboxOptions, type InboxSocket } from "../../../src/subscriptions/inbox.ts";

class FakeSocket implements InboxSocket {
  readonly sent: Array<{ delivery: number; position: number; events?: string; bundle: unknown }> = [];
  closed: { code: number; reason: string } | undefined;
  #attachment: unknown = null;
  get readyState() {
    return this.closed ? 3 : 1;
  }
  send(message: string) {
    if (this.closed) throw new Error("send after close");
    this.sent.push(JSON.parse(message));
  }
  close(code = 1000, reason = "") {
    this.closed ??= { code, reason };
  }
  serializeAttachment(value: unknown) {
    this.#attachment = structuredClone(value);
    expect(JSON.stringify(value).length).toBeLessThan(2048);
  }
  deserializeAttachment() {
    return structuredClone(this.#attachment);
  }
}

/** A channel's retained notifications; strict: positions are event numbers, one event per notification here unless given. */
class FakeChannel {
  readonly rows: InboxNotification[] = [];
  nextSeq = 1;
  lastEvent = 0;
  constructor(readonly strict = true) {}
  store(events = 1): InboxNotification {
    const seq = this.nextSeq++;
    const first = this.lastEvent + 1;
    this.lastEvent += events;
    const n: InboxNotification = {
      seq,
      position: this.strict ? this.lastEvent : seq,
      firstEvent: this.strict ? first : null,
      lastEvent: this.strict ? this.lastEvent : null,
      body: JSON.stringify({ resourceType: "Bundle", id: `n${seq}` }),
    };
    this.rows.push(n);
    return n;
  }
  /** Drops the oldest retained rows (a replay window passing). */
  trim(upToSeq: number) {
    while (this.rows[0] && this.rows[0].seq <= upToSeq) this.rows.shift();
  }
  feed(): InboxFeed {
    return {
      after: (position, limit) => this.rows.filter((r) => r.position > position).slice(0, limit),
      afterDelivery: (seq, limit) => this.rows.filter((r) => r.seq > seq).slice(0, limit),
      head: () => ({ seq: this.nextSeq - 1, position: this.strict ? this.lastEvent : this.nextSeq - 1 }),
    };
  }
}

function setup(options: Partial<InboxOptions> = {}, strict = true) {
  const channel = new FakeChannel(strict);
  const sockets: FakeSocket[] = [];
  let clock = 1_000_000;
  const host = { acceptWebSocket: () => {}, getWebSockets: () => sockets.filter((s) => !s.closed) };
  const make = () => new Inbox(host, (name) => (name === "ch" ? channel.feed() : undefined), { now: () => clock, ...options });
  const state = { inbox: make() };
  return {
    channel,
    get inbox() {
      return state.inbox;
    },
    /** A new Inbox over the same sockets: what waking from hibernation amounts to. */
    wake() {
      state.inbox = make();
    },
    connect(client: string, since?: number) {
      const ws = new FakeSocket();
      sockets.push(ws);
      state.inbox.attach(ws, "ch", client, since);
      return ws;
    },
    tick(ms: number) {
      clock += ms;
    },
  };
}

describe("frames: one notification Bundle per message, with its delivery, event range and position", () => {
  it("is JSON whose bundle is the stored Bundle", () => {
    const n: InboxNotification = { seq: 12, position: 6, firstEvent: 5, lastEvent: 6, body: '{"resourceType":"Bundle","type":"subscription-notification"}' };
    expect(JSON.parse(inboxFrame("enc", n))).toEqual({ channel: "enc", delivery: 12, events: "5-6", position: 6, bundle: { resourceType: "Bundle", type: "subscription-notification" } });
    expect(JSON.parse(inboxFrame("enc", { ...n, firstEvent: null, lastEvent: null, position: 12 }))).toEqual({ channel: "enc", delivery: 12, position: 12, bundle: JSON.parse(n.body) });
  });

  it.each([
    ['{"ack": 5}', 5],
    ['{"ack":0}', 0],
    ['{"ack": -1}', undefined],
    ['{"ack": 1.5}', undefined],
    ['{"ack": "5"}', undefined],
    ["5", undefined],
    ["null", undefined],
    ["not json", undefined],
  ])("parseAck(%s) is %s", (text, expected) => {
    expect(parseAck(text)).toBe(expected);
  });

  it("a binary message is not an ack", () => {
    expect(parseAck(new TextEncoder().encode('{"ack":1}').buffer as ArrayBuffer)).toBeUndefined();
  });
});

describe("connect: since, or from now", () => {
  it("without since, only what is stored after the connection", () => {
    const t = setup();
    t.channel.store();
    const ws = t.connect("app");
    t.channel.store();
    t.inbox.flush();
    expect(ws.sent.map((f) => f.position)).toEqual([2]);
  });

  it("with since, the retained notifications after it first, then the new ones, in order", () => {
    const t = setup();
    for (let i = 0; i < 4; i++) t.channel.store();
    const ws = t.connect("app", 2);
    expect(ws.sent.map((f) => f.position)).toEqual([3, 4]);
    t.channel.store(2);
    t.inbox.flush();
    expect(ws.sent.map((f) => [f.events, f.position])).toEqual([["3-3", 3], ["4-4", 4], ["5-6", 6]]);
  });

  it("a since beyond the channel's position starts at the head", () => {
    const t = setup();
    t.channel.store();
    const ws = t.connect("app", 50);
    t.channel.store();
    t.inbox.flush();
    expect(ws.sent.map((f) => f.position)).toEqual([2]);
    expect(t.inbox.subscribers()[0]).toMatchObject({ acked: 1, sent: 2 });
  });

  it("a since older than what is retained starts at the oldest retained", () => {
    const t = setup();
    for (let i = 0; i < 5; i++) t.channel.store();
    t.channel.trim(3);
    expect(t.connect("app", 1).sent.map((f) => f.position)).toEqual([4, 5]);
  });
});

describe("ack: recorded per connection, capped at what was sent", () => {
  it("subscribers() shows each connection's client and positions", () => {
    const t = setup();
    const a = t.connect("app");
    const b = t.connect("ops");
    t.channel.store();
    t.channel.store();
    t.inbox.flush();
    t.inbox.message(a, '{"ack": 2}');
    t.inbox.message(b, '{"ack": 1}');
    t.inbox.message(b, '{"ack": 0}');
    expect(t.inbox.subscribers().map((s) => [s.client, s.acked, s.sent])).toEqual([["app", 2, 2], ["ops", 1, 2]]);
    t.inbox.message(a, '{"ack": 99}');
    expect(t.inbox.subscribers()[0]!.acked).toBe(2);
  });

  it("anything else closes the connection with 1008", () => {
    const t = setup();
    const ws = t.connect("app");
    t.inbox.message(ws, "hello");
    expect(ws.closed?.code).toBe(CLOSE_POLICY);
  });
});

describe("flow control: at most `window` unacknowledged, the rest waits in storage", () => {
  it("sends up to the window, and more as acks arrive", () => {
    const t = setup({ window: 3 });
    for (let i = 0; i < 10; i++) t.channel.store();
    const ws = t.connect("app", 0);
    expect(ws.sent.map((f) => f.position)).toEqual([1, 2, 3]);
    t.inbox.message(ws, '{"ack": 2}');
    expect(ws.sent.map((f) => f.position)).toEqual([1, 2, 3, 4, 5]);
    t.inbox.message(ws, '{"ack": 5}');
    expect(ws.sent.map((f) => f.position)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("one notification larger than the window still goes when nothing is unacknowledged", () => {
    const t = setup({ window: 3 });
    const ws = t.connect("app");
    t.channel.store(10);
    t.channel.store(1);
    t.inbox.flush();
    expect(ws.sent.map((f) => f.events)).toEqual(["1-10"]);
    t.inbox.message(ws, '{"ack": 10}');
    expect(ws.sent.map((f) => f.events)).toEqual(["1-10", "11-11"]);
  });
});

describe("a slow client is cut off (4008) rather than buffered without bound", () => {
  it("a full window with more waiting and no ack for slowClientMs closes the connection, naming the since to reconnect with", () => {
    const t = setup({ window: 2, slowClientMs: 30_000 });
    const slow = t.connect("slow");
    const fast = t.connect("fast");
    for (let i = 0; i < 5; i++) {
      t.channel.store();
      t.inbox.flush();
      t.inbox.message(fast, JSON.stringify({ ack: t.channel.lastEvent }));
    }
    t.inbox.message(slow, '{"ack": 1}');
    t.tick(29_000);
    t.channel.store();
    t.inbox.flush();
    expect(slow.closed).toBeUndefined();
    expect(t.inbox.subscribers().find((s) => s.client === "slow")!.stalledSince).not.toBeNull();
    t.tick(1_000);
    t.inbox.flush();
    expect(slow.closed).toEqual({ code: CLOSE_SLOW_CLIENT, reason: expect.stringContaining("since=1") });
    expect(slow.sent.map((f) => f.position)).toEqual([1, 2, 3]);
    expect(fast.closed).toBeUndefined();
    expect(fast.sent).toHaveLength(6);
  });

  it("an ack restarts the clock", () => {
    const t = setup({ window: 1, slowClientMs: 10_000 });
    const ws = t.connect("app");
    for (let i = 0; i < 6; i++) t.channel.store();
    t.inbox.flush();
    for (let i = 1; i <= 4; i++) {
      t.tick(9_000);
      t.inbox.message(ws, JSON.stringify({ ack: i }));
      t.inbox.flush();
    }
    expect(ws.closed).toBeUndefined();
    expect(ws.sent.map((f) => f.position)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe("hibernation: all state is in the attachments", () => {
  it("a new Inbox over the same sockets carries on: positions, acks, stalls", () => {
    const t = setup({ window: 2 });
    const ws = t.connect("app", 0);
    t.channel.store();
    t.channel.store();
    t.inbox.flush();
    t.inbox.message(ws, '{"ack": 1}');
    t.wake();
    expect(t.inbox.subscribers()[0]).toMatchObject({ client: "app", acked: 1, sent: 2 });
    t.channel.store();
    t.inbox.flush();
    t.wake();
    t.inbox.message(ws, '{"ack": 3}');
    t.channel.store();
    t.wake();
    t.inbox.flush();
    expect(ws.sent.map((f) => f.position)).toEqual([1, 2, 3, 4]);
  });
});

describe("property: whatever the interleaving, a client gets every notification exactly once per connection, in order, within its window, and a reconnect with since = last ack loses nothing", () => {
  type Cmd = { kind: "store"; events: number } | { kind: "ack" } | { kind: "wake" } | { kind: "reconnect" } | { kind: "flush" };
  const cmd: fc.Arbitrary<Cmd> = fc.oneof(
    fc.record({ kind: fc.constant("store" as const), events: fc.integer({ min: 1, max: 3 }) }),
    fc.constant({ kind: "ack" as const }),
    fc.constant({ kind: "wake" as const }),
    fc.constant({ kind: "reconnect" as const }),
    fc.constant({ kind: "flush" as const }),
  );

  it.each([true, false])("strict sequencing: %s", (strict) => {
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 60 }), fc.integer({ min: 1, max: 6 }), (cmds, window) => {
        const t = setup({ window, slowClientMs: Number.MAX_SAFE_INTEGER }, strict);
        let ws = t.connect("app", 0);
        /** Positions the client processed (acked) across connections. */
        let processed: number[] = [];
        let acked = 0;
        const check = () => {
          const got = ws.sent.map((f) => f.position);
          // In order, no repeats within a connection.
          expect(got).toEqual([...new Set(got)].sort((a, b) => a - b));
          // Within the window: what is unacknowledged beyond the first message in flight spans at most `window`.
          const inFlight = got.filter((p) => p > acked);
          if (inFlight.length > 1) expect(inFlight.at(-1)! - acked).toBeLessThanOrEqual(window);
        };
        for (const c of cmds) {
          if (c.kind === "store") {
            t.channel.store(c.events);
            t.inbox.flush();
          } else if (c.kind === "ack") {
            const last = ws.sent.at(-1);
            if (last && last.position > acked) {
              processed = [...processed, ...ws.sent.filter((f) => f.position > acked).map((f) => f.position)];
              acked = last.position;
              t.inbox.message(ws, JSON.stringify({ ack: acked }));
            }
          } else if (c.kind === "wake") t.wake();
          else if (c.kind === "flush") t.inbox.flush();
          else {
            ws.close(1000);
            ws = t.connect("app", acked);
          }
          check();
        }
        // Drain: ack until everything is through.
        for (let i = 0; i < 1000 && acked < t.channel.feed().head().position; i++) {
          const last = ws.sent.at(-1);
          if (last && last.position > acked) {
            processed = [...processed, ...ws.sent.filter((f) => f.position > acked).map((f) => f.position)];
            acked = last.position;
          }
          t.inbox.message(ws, JSON.stringify({ ack: acked }));
          check();
        }
        expect(processed).toEqual(t.channel.rows.map((r) => r.position));
      }),
      { seed: 20261201, numRuns: 200, verbose: 1 },
    );
  });
});
