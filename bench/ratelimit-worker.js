/**
 * A stand-in for Cloudflare's Workers Rate Limiting binding in plain workerd
 * (which has none): the edge's `limit({ key })` reaches it over a service
 * binding (an RPC per request in the same process), as on Cloudflare the
 * check is a call to a service in the same location.
 */
import { WorkerEntrypoint } from "cloudflare:workers";

/** Fixed windows per key, in this isolate's memory. */
const windows = new Map();
const LIMIT = 1_000_000_000;
const PERIOD_MS = 60_000;

/** A limit the bench never reaches: every request pays the check, none is refused. */
export class RateLimiter extends WorkerEntrypoint {
  async limit({ key }) {
    const epoch = Math.floor(Date.now() / PERIOD_MS);
    const w = windows.get(key);
    const count = w && w.epoch === epoch ? w.count : 0;
    if (count >= LIMIT) return { success: false };
    windows.set(key, { epoch, count: count + 1 });
    return { success: true };
  }
}

/** Refuses everything: the bench's check that the edge really asks its binding. */
export class Refuser extends WorkerEntrypoint {
  async limit() {
    return { success: false };
  }
}

export default { fetch: () => new Response("rate limiter", { status: 404 }) };
