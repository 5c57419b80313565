import type { InboxFeed, InboxNotification } from "./inbox.ts";

type Row = {
  seq: number;
  first_event: number | null;
  last_event: number | null;
  body: string;
};

/**
 * The inbox's view of the channel object's `deliveries` table: positions are
 * event numbers under strict sequencing, delivery sequence numbers otherwise
 * (as replay reads them).
 * @param lastEvent the channel's last event number (strict sequencing)
 * @see docs/inbox.md
 */
export function deliveriesFeed(sql: SqlStorage, byEvent: boolean, lastEvent: () => number): InboxFeed {
  const toNotification = (r: Row): InboxNotification => ({
    seq: r.seq,
    position: byEvent ? (r.last_event ?? r.seq) : r.seq,
    firstEvent: r.first_event,
    lastEvent: r.last_event,
    body: r.body,
  });
  const rows = (query: string, ...params: number[]) => sql.exec<Row>(query, ...params).toArray().map(toNotification);
  return {
    after: (position, limit) =>
      byEvent
        ? rows("SELECT seq, first_event, last_event, body FROM deliveries WHERE last_event > ? ORDER BY seq LIMIT ?", position, limit)
        : rows("SELECT seq, first_event, last_event, body FROM deliveries WHERE seq > ? ORDER BY seq LIMIT ?", position, limit),
    afterDelivery: (seq, limit) => rows("SELECT seq, first_event, last_event, body FROM deliveries WHERE seq > ? ORDER BY seq LIMIT ?", seq, limit),
    head: () => {
      const seq = sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM deliveries").one().m ?? 0;
      return { seq, position: byEvent ? lastEvent() : seq };
    },
  };
}
