import type { SubscriberStatus } from "../inbox.ts";

/** What `accept` answers the intake route; never throws across RPC. */
export type AcceptResult =
  | { ok: true; stored: number; duplicates: number; held: number }
  | { ok: false; code: string; message: string };

export interface TargetStatus {
  target: string;
  /** The delivery sequence number up to which the target has everything (`X-Fhir-Edge-Delivery`). */
  cursor: number;
  /** The highest event number delivered to the target. */
  lastEvent: number | null;
  delivered: number;
  /** Notifications waiting for this target. */
  pending: number;
  failures: number;
  nextAttemptAt: string | null;
  lastStatus: string | null;
  /** Notifications dropped by the retention limit before this target got them. */
  dropped: number;
}

export interface ChannelStatus {
  subscriptionId: string | null;
  lastEventNumber: number;
  /** The delivery sequence number the next notification gets. */
  nextDelivery: number;
  handshakeAt: string | null;
  heartbeatAt: string | null;
  lastNotificationAt: string | null;
  liveness: { checkedAt: string | null; result: string | null };
  /** Notifications some target still waits for. */
  pendingDeliveries: number;
  heldOutOfOrder: number;
  /** The missing range being waited for (grace) or recovered, if any. */
  pendingGap: { from: number; to: number; since: string | null } | null;
  /** The last 20 unrecoverable gaps, newest first, and the events they add up to. */
  gaps: Array<{ from: number; to: number; outcome: string; at: string }>;
  unrecoverableEvents: number;
  /** How far back `GET /admin/channels/<channel>/events` reaches. */
  replay: { windowSeconds: number; retained: number; oldestEvent: number | null; oldestDelivery: number | null; oldestAt: string | null };
  targets: TargetStatus[];
  /** Open WebSocket inbox connections and their acked positions. */
  subscribers: SubscriberStatus[];
}
