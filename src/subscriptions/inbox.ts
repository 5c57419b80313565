/**
 * The WebSocket inbox of a channel: clients of the edge read the channel's
 * notifications over a WebSocket served by the channel's Durable Object with
 * the Hibernation API. Everything the inbox knows about a connection lives
 * in the socket's attachment, so an object that hibernates (or is evicted)
 * and wakes for the next message or event carries on where it was; an idle
 * connection holds no memory and runs no code.
 *
 * Flow control: a client may have at most `window` positions unacknowledged;
 * more wait in the channel's storage (never in memory) until it acks. A
 * client that keeps its window full without acking for `slowClientMs` while
 * more is waiting is closed with 4008, and reconnects with `since` = its last
 * ack.
 * @see docs/inbox.md
 */

/** One retained notification, as the inbox sends it. */
export interface InboxNotification {
  /** The delivery sequence number (never reused within a channel; `X-Fhir-Edge-Delivery`). */
  seq: number;
  /** What a client acks and passes as `since`: the last event number under strict sequencing, else `seq`. */
  position: number;
  firstEvent: number | null;
  lastEvent: number | null;
  /** The notification Bundle as a target gets it (JSON text). */
  body: string;
}

/** What the inbox reads from the channel's store. */
export interface InboxFeed {
  /** Retained notifications after a client position, oldest first, at most `limit`. */
  after(position: number, limit: number): InboxNotification[];
  /** Retained notifications after delivery sequence number `seq`, oldest first, at most `limit`. */
  afterDelivery(seq: number, limit: number): InboxNotification[];
  /** The newest delivery sequence number given so far, and the channel's position now. */
  head(): { seq: number; position: number };
}

/** A socket as the inbox uses it: a hibernatable WebSocket, or a stand-in in tests. */
export interface InboxSocket {
  send(message: string): void;
  close(code?: number, reason?: string): void;
  serializeAttachment(value: unknown): void;
  deserializeAttachment(): unknown;
  readonly readyState: number;
}

/** The part of `DurableObjectState` the inbox uses. */
export interface InboxHost {
  acceptWebSocket(ws: WebSocket, tags?: string[]): void;
  getWebSockets(tag?: string): InboxSocket[];
}

/** A connection's state, kept in its attachment (at most 2 KiB: names and numbers only). */
interface Subscriber {
  v: 1;
  channel: string;
  client: string;
  connectedAt: number;
  /** The highest position the client acknowledged (or the `since` it connected with). */
  acked: number;
  /** The last delivery sequence number and position sent. */
  sentSeq: number;
  sentPosition: number;
  /** Since when the window has been full while more was waiting; null while flowing. */
  stalledAt: number | null;
}

/** `/status`: one open inbox connection. */
export interface SubscriberStatus {
  client: string;
  connectedAt: string;
  /** The position the client acknowledged last. */
  acked: number;
  /** The position sent last. */
  sent: number;
  /** Since when it has kept its window full with more waiting, if it has. */
  stalledSince: string | null;
}

export interface InboxOptions {
  /** Positions (events, or notifications without event numbers) a client may have unacknowledged. */
  window: number;
  /** Milliseconds a full window may go without an ack while more is waiting before the client is cut off. */
  slowClientMs: number;
  now: () => number;
}

export const INBOX_DEFAULTS: InboxOptions = { window: 100, slowClientMs: 30_000, now: Date.now };

/** Close codes the inbox uses (4000-4999 are the application's, RFC 6455 section 7.4.2). */
export const CLOSE_SLOW_CLIENT = 4008;
export const CLOSE_POLICY = 1008;

const OPEN = 1;
const BATCH = 50;
const INTERNAL_ORIGIN = "https://channel-object.internal";

/** The request the route forwards to the channel's object: who connects to which channel, from where. */
export function inboxRequest(upgrade: Request, channel: string, client: string, since: number | undefined): Request {
  const url = new URL("/inbox", INTERNAL_ORIGIN);
  url.searchParams.set("channel", channel);
  url.searchParams.set("client", client);
  if (since !== undefined) url.searchParams.set("since", String(since));
  return new Request(url, { headers: upgrade.headers });
}

/** The wire frame of one notification: its delivery, event range and position, and the Bundle (JSON text as stored, not re-serialised). */
export function inboxFrame(channel: string, n: InboxNotification): string {
  const events = n.firstEvent !== null && n.lastEvent !== null ? `"events":"${n.firstEvent}-${n.lastEvent}",` : "";
  return `{"channel":${JSON.stringify(channel)},"delivery":${n.seq},${events}"position":${n.position},"bundle":${n.body}}`;
}

/** A client message: `{"ack": <position>}`; anything else is undefined. */
export function parseAck(data: string | ArrayBuffer): number | undefined {
  if (typeof data !== "string" || data.length > 100) return undefined;
  try {
    const value = (JSON.parse(data) as { ack?: unknown } | null)?.ack;
    return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

const isSubscriber = (v: unknown): v is Subscriber => typeof v === "object" && v !== null && (v as Subscriber).v === 1;

/**
 * The inbox of one channel object. Holds no state of its own: every call
 * reads the sockets' attachments and the feed, so it is rebuilt freely when
 * the object wakes.
 * @see docs/inbox.md
 */
export class Inbox {
  readonly #host: InboxHost;
  readonly #feedFor: (channel: string) => InboxFeed | undefined;
  readonly #options: InboxOptions;

  constructor(host: InboxHost, feedFor: (channel: string) => InboxFeed | undefined, options: Partial<InboxOptions> = {}) {
    this.#host = host;
    this.#feedFor = feedFor;
    this.#options = { ...INBOX_DEFAULTS, ...options };
  }

  /**
   * Accepts the WebSocket of a request the route authorised (`inboxRequest`):
   * the retained notifications after `since` go first (as far as the window
   * allows), then each new one as it is stored. Without `since`, only new ones.
   */
  connect(request: Request): Response {
    const url = new URL(request.url);
    const channel = url.searchParams.get("channel") ?? "";
    const client = url.searchParams.get("client") ?? "";
    const sinceRaw = url.searchParams.get("since");
    const feed = this.#feedFor(channel);
    if (!feed || client === "") return new Response("channel not configured", { status: 404 });
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
    const pair = new WebSocketPair();
    const [clientEnd, server] = [pair[0], pair[1]];
    this.#host.acceptWebSocket(server);
    this.attach(server, channel, client, sinceRaw === null ? undefined : Number(sinceRaw));
    return new Response(null, { status: 101, webSocket: clientEnd });
  }

  /**
   * Starts serving a socket the host accepted: records where it starts (after
   * `since`, or at the channel's head), then sends what the window allows.
   */
  attach(ws: InboxSocket, channel: string, client: string, since: number | undefined): void {
    const feed = this.#feedFor(channel);
    if (!feed) return;
    const head = feed.head();
    // A since beyond the channel's position (a client from another life of the channel) starts at the head.
    const from = since === undefined ? head.position : Math.min(since, head.position);
    const first = since === undefined ? undefined : feed.after(from, 1)[0];
    const state: Subscriber = {
      v: 1,
      channel,
      client,
      connectedAt: this.#options.now(),
      acked: from,
      sentSeq: first ? first.seq - 1 : head.seq,
      sentPosition: from,
      stalledAt: null,
    };
    this.#send(ws, state, feed);
  }

  /** Sends every open socket what it can take now: called after the object stores notifications. */
  flush(): void {
    for (const ws of this.#host.getWebSockets()) {
      const state = ws.deserializeAttachment();
      if (!isSubscriber(state) || ws.readyState !== OPEN) continue;
      const feed = this.#feedFor(state.channel);
      if (feed) this.#send(ws, state, feed);
    }
  }

  /** A client message: an ack moves its position and reopens its window; anything else closes it (1008). */
  message(ws: InboxSocket, data: string | ArrayBuffer): void {
    const state = ws.deserializeAttachment();
    if (!isSubscriber(state)) return;
    const ack = parseAck(data);
    if (ack === undefined) {
      ws.close(CLOSE_POLICY, 'expected {"ack": <position>}');
      return;
    }
    // What was never sent cannot be acknowledged: an ack is capped at the position sent.
    const acked = Math.max(state.acked, Math.min(ack, state.sentPosition));
    const feed = this.#feedFor(state.channel);
    const next: Subscriber = { ...state, acked, stalledAt: acked > state.acked ? null : state.stalledAt };
    if (feed) this.#send(ws, next, feed);
    else ws.serializeAttachment(next);
  }

  /** The client closed: complete the closing handshake. */
  close(ws: InboxSocket, code: number, reason: string): void {
    try {
      // 1005 and 1006 say no code was given; they may not be sent back.
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }

  /** For `/status`: every open connection, its client and positions. */
  subscribers(): SubscriberStatus[] {
    return this.#host
      .getWebSockets()
      .map((ws) => ws.deserializeAttachment())
      .filter(isSubscriber)
      .map((s) => ({
        client: s.client,
        connectedAt: new Date(s.connectedAt).toISOString(),
        acked: s.acked,
        sent: s.sentPosition,
        stalledSince: s.stalledAt === null ? null : new Date(s.stalledAt).toISOString(),
      }));
  }

  /** Sends what the window allows, in order; records where it got to; cuts off a client stalled too long. */
  #send(ws: InboxSocket, start: Subscriber, feed: InboxFeed): void {
    const { window, slowClientMs, now } = this.#options;
    const state = { ...start };
    let blocked = false;
    outer: for (;;) {
      const batch = feed.afterDelivery(state.sentSeq, BATCH);
      for (const n of batch) {
        const inFlight = state.sentPosition > state.acked;
        if (inFlight && n.position - state.acked > window) {
          blocked = true;
          break outer;
        }
        ws.send(inboxFrame(state.channel, n));
        state.sentSeq = n.seq;
        state.sentPosition = Math.max(state.sentPosition, n.position);
      }
      if (batch.length < BATCH) break;
    }
    if (!blocked) state.stalledAt = null;
    else {
      state.stalledAt ??= now();
      if (now() - state.stalledAt >= slowClientMs) {
        ws.serializeAttachment(state);
        ws.close(CLOSE_SLOW_CLIENT, `slow client: no ack for ${Math.round(slowClientMs / 1000)} s with its window full; reconnect with since=${state.acked}`);
        return;
      }
    }
    ws.serializeAttachment(state);
  }
}
