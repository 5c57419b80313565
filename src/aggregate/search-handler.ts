import type { Context } from "hono";
import type { RequestAuthorizer } from "../auth/inbound/authorize.ts";
import type { EdgeConfig } from "../config/edge-config.ts";
import type { EdgeHonoEnv } from "../context.ts";
import {
  CursorRejectedError,
  CursorTooLargeError,
  InvalidRequestError,
  MethodNotAllowedError,
  NoSourceAnsweredError,
  NotAcceptableError,
  outcomeOf,
  type CursorRejection,
} from "../errors.ts";
import { RESOURCE_TYPE } from "../fhir/resource-type.ts";
import type { Bundle, Resource } from "../fhir/types.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { edgeRoot, splitRawUrl } from "../routes.ts";
import { routeShape } from "../fhir/route-shape.ts";
import type { Transformer } from "../transform/transforms.ts";
import { buildSearchset } from "./bundle.ts";
import { cursorKey, MAX_CURSOR_LENGTH, readCursor, signCursor, type CursorState } from "./cursor.ts";
import { aggregateContext, type AggregateHandler } from "./custom.ts";
import { aggregateTimeout, fanOut, type FanOutContext } from "./fan-out.ts";
import { collectPage, type FetchPages, type PageResult } from "./collect.ts";
import type { SourcePosition } from "./merge.ts";
import { readAggregateQuery, type AggregateSearch } from "./query.ts";
import { fetchSourceBundle, fetchSourcePage, positionUrl } from "./source-page.ts";
import { parseSort } from "./sort.ts";
import { selectSources } from "./sources.ts";
import { declaredSources } from "../config/lookup.ts";
import { fhirJson } from "../fhir/response.ts";

export interface AggregateRouteOptions {
  deps: ForwardDeps;
  authorize: RequestAuthorizer;
  transformer: Transformer | undefined;
  /** Custom aggregate handlers by resource type. */
  custom: ReadonlyMap<string, AggregateHandler>;
}

/** JWT clients need `s` on the type (the proxy's own scope rules); nothing goes upstream otherwise. */
async function authorizeSearch(c: Context<EdgeHonoEnv>, authorize: RequestAuthorizer, resourceType: string): Promise<void> {
  await authorize(c, { method: "GET", route: routeShape("GET", [resourceType]), segments: [resourceType], search: "", readBody: async () => new ArrayBuffer(0) });
}

function reject(reason: CursorRejection): never {
  const messages: Record<CursorRejection, string> = {
    invalid: "The _cursor is not one this edge issued, or it was altered",
    expired: "The _cursor has expired: run the aggregate search again",
    foreign: "The _cursor was issued for another client, another resource type, or a source this client may not use",
  };
  throw new CursorRejectedError(reason, messages[reason]);
}

/** The cursor's state, once its signature, expiry and owner check out; throws 400 otherwise, before anything is fetched. */
async function stateFromCursor(token: string, c: Context<EdgeHonoEnv>, resourceType: string, now: number): Promise<CursorState> {
  const config = c.get("config");
  const read = await readCursor(token, await cursorKey(config.aggregate.cursorSecret), now);
  if (!read.ok) reject(read.error);
  const state = read.value;
  const allowed = declaredSources(config);
  if (state.client !== c.get("client").name || state.resourceType !== resourceType || state.positions.some((p) => !allowed.includes(p.source))) {
    reject("foreign");
  }
  return state;
}

function newState(c: Context<EdgeHonoEnv>, resourceType: string, search: AggregateSearch, sources: string[]): CursorState {
  return {
    resourceType,
    client: c.get("client").name,
    count: search.count,
    sort: search.sort,
    positions: sources.map((source) => ({ source, at: `/${resourceType}${search.search}`, skip: 0 })),
  };
}

/** Checks every position of a cursor before any fetch: one that could leave its source's base refuses the cursor. */
function checkPositions(config: EdgeConfig, state: CursorState, fromCursor: boolean): void {
  if (!fromCursor) return;
  for (const p of state.positions) {
    if (p.at !== null && config.sources.has(p.source) && positionUrl(config, p.source, p.at) === undefined) reject("invalid");
  }
}

/**
 * `GET /aggregate/:resourceType`: one search on several sources, in
 * parallel, merged into one searchset page with `link[next]` carrying a
 * signed cursor; or, for a type with a custom aggregate handler, that handler.
 * @see docs/aggregate.md
 */
export const aggregateSearchHandler =
  (options: AggregateRouteOptions) =>
  async (c: Context<EdgeHonoEnv>): Promise<Response> => {
    const { deps } = options;
    const config = c.get("config");
    const requestId = c.get("requestId");
    if (c.req.method !== "GET" && c.req.method !== "HEAD") throw new MethodNotAllowedError(c.req.method, ["GET", "HEAD"]);
    const resourceType = c.req.param("resourceType") ?? "";
    if (!RESOURCE_TYPE.test(resourceType)) {
      throw new InvalidRequestError("invalid-resource-type", "The aggregate path is /aggregate/<ResourceType>, e.g. /aggregate/Patient");
    }
    c.set("logRoute", `aggregate/${resourceType}`);
    const query = readAggregateQuery(splitRawUrl(c.req.url).search);
    if (!query.ok) {
      if (query.error.reason === "format-not-supported") throw new NotAcceptableError("format-not-supported", query.error.message);
      throw new InvalidRequestError(query.error.reason, query.error.message);
    }
    await authorizeSearch(c, options.authorize, resourceType);
    const root = edgeRoot(c, config.publicUrl, "aggregateSearch");
    const ctx: FanOutContext = { env: c.env, requestId, clientHeaders: c.req.raw.headers };

    let state: CursorState;
    if (query.value.kind === "cursor") {
      state = await stateFromCursor(query.value.cursor, c, resourceType, deps.now());
    } else {
      const search = query.value.search;
      const selected = selectSources(declaredSources(config), search.sources);
      if (!selected.ok) throw new InvalidRequestError("unknown-source", `sources names ${JSON.stringify(selected.error.slice(0, 64))}, which is not a source of this edge`);
      if (selected.value.length === 0) throw new InvalidRequestError("no-sources", "This edge has no sources to aggregate");
      const custom = options.custom.get(resourceType);
      if (custom) return runCustom(c, options, custom, resourceType, search, selected.value, root, ctx);
      state = newState(c, resourceType, search, selected.value);
    }
    c.set("logSource", state.positions.map((p) => p.source).join(","));

    checkPositions(config, state, query.value.kind === "cursor");
    const timeoutMs = config.aggregate.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    const timedOut = (p: SourcePosition): PageResult => ({ ok: false, error: aggregateTimeout(p.source, timeoutMs), attempts: 0 });
    const fetchPages: FetchPages = async (positions) => {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return positions.map(timedOut);
      return fanOut(positions, remaining, (p, signal) => fetchSourcePage(config, p, root, { ...ctx, signal }, deps), timedOut, c.req.raw.signal);
    };
    const collected = await collectPage(state.positions, fetchPages, state.count, parseSort(state.sort));
    c.set("logAttempts", collected.attempts);
    if (collected.retried || collected.failures.length > 0) c.set("logIncident", true);
    if (collected.asked > 0 && collected.answered === 0) throw new NoSourceAnsweredError(collected.failures, requestId);
    // A misconfigured source cannot recover while paging: it is reported once and left out of later pages.
    const positions = collected.positions.map((p) => (config.brokenSources.has(p.source) ? { ...p, at: null } : p));

    if (options.transformer) {
      const transformer = options.transformer;
      await Promise.all(
        collected.entries.map(async (m) => {
          if (m.entry.resource) m.entry.resource = await transformer.apply(m.entry.resource as Resource, { source: m.source, requestId, env: c.env });
        }),
      );
    }

    let nextUrl: string | undefined;
    let pagingStopped: CursorTooLargeError | undefined;
    if (state.count !== 0 && positions.some((p) => p.at !== null)) {
      const key = await cursorKey(config.aggregate.cursorSecret);
      const token = await signCursor({ ...state, positions }, key, deps.now());
      // A link the edge would refuse when followed is not given: the page says why instead.
      if (token.length <= MAX_CURSOR_LENGTH) nextUrl = `${root}/aggregate/${resourceType}?_cursor=${token}`;
      else {
        pagingStopped = new CursorTooLargeError(MAX_CURSOR_LENGTH);
        c.set("logIncident", true);
      }
    }
    const bundle = buildSearchset({
      id: crypto.randomUUID(),
      edgeRoot: root,
      selfUrl: `${root}/aggregate/${resourceType}${splitRawUrl(c.req.url).search}`,
      ...(nextUrl ? { nextUrl } : {}),
      ...(collected.total === undefined ? {} : { total: collected.total }),
      entries: collected.entries,
      outcomes: [
        ...collected.failures.map((f) => outcomeOf(f.error, requestId)),
        ...collected.warnings.map((w) => outcomeOf(w, requestId)),
        ...(pagingStopped ? [outcomeOf(pagingStopped, requestId)] : []),
      ],
      lastUpdated: new Date(deps.now()).toISOString(),
    });
    return fhirJson(bundle);
  };

async function runCustom(
  c: Context<EdgeHonoEnv>,
  options: AggregateRouteOptions,
  handler: AggregateHandler,
  resourceType: string,
  search: AggregateSearch,
  sources: string[],
  root: string,
  ctx: FanOutContext,
): Promise<Response> {
  const config = c.get("config");
  c.set("logSource", sources.join(","));
  // With the fan-out's deadline-bound signal, a search still running at AGGREGATE_TIMEOUT is cancelled.
  const searchOneWith =
    (signal: AbortSignal | undefined) =>
    async (source: string, type: string, query: string): Promise<Bundle> => {
      if (!RESOURCE_TYPE.test(type)) throw new InvalidRequestError("invalid-resource-type", `${JSON.stringify(type.slice(0, 64))} is not a resource type`);
      if (type !== resourceType) await authorizeSearch(c, options.authorize, type);
      const bundle = await fetchSourceBundle(config, source, `/${type}${query}`, root, signal ? { ...ctx, signal } : ctx, options.deps);
      return options.transformer ? ((await options.transformer.apply(bundle, { source, requestId: ctx.requestId, env: c.env })) as Bundle) : bundle;
    };
  const context = aggregateContext(
    { resourceType, sources, params: new URLSearchParams(search.search), client: c.get("client"), requestId: ctx.requestId, env: c.env },
    {
      searchOne: searchOneWith(c.req.raw.signal),
      fanOut: (items, run, timeout) => fanOut(items, config.aggregate.timeoutMs, (item, signal) => run(item, { searchOne: searchOneWith(signal) }), timeout, c.req.raw.signal),
      timeoutError: (source) => aggregateTimeout(source, config.aggregate.timeoutMs),
    },
  );
  const answer = await handler(context);
  return answer instanceof Response ? answer : fhirJson(answer);
}
