import type { ClientIdentity, EdgeBindings } from "../context.ts";
import { ForbiddenError, outcomeOf } from "../errors.ts";
import type { Bundle, OperationOutcome, Resource } from "../fhir/types.ts";

/** One source's answer in {@link AggregateContext.searchEach}. */
export type SourceSearchResult = { source: string; ok: true; bundle: Bundle } | { source: string; ok: false; outcome: OperationOutcome };

/** Search parameters as a handler may give them. */
export type SearchParamsInput = URLSearchParams | Record<string, string> | string;

/** What a custom aggregate handler gets: the request, and searches that go through the edge's machinery. */
export interface AggregateContext {
  /** The resource type of `GET /aggregate/:resourceType`. */
  resourceType: string;
  /** The sources picked by `sources=`, or every source the client may use. */
  sources: readonly string[];
  /** The search the client sent, `sources` taken out. */
  params: URLSearchParams;
  client: ClientIdentity;
  requestId: string;
  env: EdgeBindings;
  /**
   * Searches one source (one of {@link sources}) with its credentials,
   * retries and timeout: the first page, URLs pointing at the edge,
   * transform handlers applied. JWT clients need `s` on the type searched.
   * @param params default: {@link params}
   * @param resourceType default: {@link resourceType}
   * @throws an EdgeError naming the source when it fails
   */
  search(source: string, params?: SearchParamsInput, resourceType?: string): Promise<Bundle>;
  /**
   * {@link search} on every one of {@link sources} in parallel (six at most
   * at once, within `AGGREGATE_TIMEOUT`); never rejects: one result per
   * source, in source order, a failure as its OperationOutcome.
   */
  searchEach(params?: SearchParamsInput, resourceType?: string): Promise<SourceSearchResult[]>;
}

/**
 * A custom aggregate for one resource type (HealthChain's aggregate
 * handlers, with the fan-out done for it): replaces the built-in merge of
 * `GET /aggregate/<Type>`. Returns a Bundle (or any resource), sent as FHIR
 * JSON with status 200, or a Response sent as it is.
 */
export type AggregateHandler = (context: AggregateContext) => Bundle | Resource | Response | Promise<Bundle | Resource | Response>;

/** Custom aggregate handlers by resource type. */
export type AggregateHandlers = Readonly<Record<string, AggregateHandler>>;

/** The I/O a context needs, given by the route. */
export interface AggregateIo {
  /** Authorizes a search of a type and fetches its first page from a source; throws an EdgeError. */
  searchOne(source: string, resourceType: string, search: string): Promise<Bundle>;
  /**
   * Runs calls with the fan-out's limits and deadline; a call still running at
   * the deadline gets `timeout`'s result. Each call gets a `searchOne` bound to
   * that deadline: its upstream requests are cancelled when time is up.
   */
  fanOut<T, R>(items: readonly T[], run: (item: T, bound: Pick<AggregateIo, "searchOne">) => Promise<R>, timeout: (item: T) => R): Promise<R[]>;
  timeoutError(source: string): unknown;
}

function toSearch(params: SearchParamsInput | undefined, fallback: URLSearchParams): string {
  const p = params === undefined ? fallback : typeof params === "string" ? new URLSearchParams(params) : new URLSearchParams(params);
  const text = p.toString();
  return text === "" ? "" : `?${text}`;
}

/** Builds the context a custom handler gets, from the request and the route's I/O. */
export function aggregateContext(
  request: Omit<AggregateContext, "search" | "searchEach">,
  io: AggregateIo,
): AggregateContext {
  const searchVia = (searchOne: AggregateIo["searchOne"], source: string, params: SearchParamsInput | undefined, resourceType: string) => {
    if (!request.sources.includes(source)) {
      return Promise.reject(new ForbiddenError("source-not-selected", `Source ${source} is not one of this aggregate's sources`));
    }
    return searchOne(source, resourceType, toSearch(params, request.params));
  };
  const search = (source: string, params?: SearchParamsInput, resourceType = request.resourceType) => searchVia(io.searchOne, source, params, resourceType);
  return {
    ...request,
    search,
    searchEach: (params, resourceType = request.resourceType) =>
      io.fanOut(
        request.sources,
        async (source, bound): Promise<SourceSearchResult> => {
          try {
            return { source, ok: true, bundle: await searchVia(bound.searchOne, source, params, resourceType) };
          } catch (error) {
            return { source, ok: false, outcome: outcomeOf(error, request.requestId) };
          }
        },
        (source) => ({ source, ok: false, outcome: outcomeOf(io.timeoutError(source), request.requestId) }),
      ),
  };
}
