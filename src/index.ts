import { createEdge } from "./app.ts";

export { createEdge, type EdgeOptions } from "./app.ts";
export { readEdgeConfig, type EdgeConfig } from "./config/edge-config.ts";
export type { SourceConfig, ConfigIssue } from "./config/types.ts";
export type { TransformContext, TransformHandler, TransformHandlers } from "./transform/transforms.ts";
export type { AggregateContext, AggregateHandler, AggregateHandlers, SearchParamsInput, SourceSearchResult } from "./aggregate/custom.ts";
export type { Bundle, BundleEntry, OperationOutcome, Resource } from "./fhir/types.ts";
export { EdgeError } from "./errors.ts";

/**
 * The deployable Worker: the edge with its defaults. workerd takes every
 * export of this module as a handler or class, so only functions and
 * classes are exported at run time (types are free).
 */
export default createEdge();
export { TokenCoordinator } from "./auth/upstream/token-coordinator.ts";
export { ChannelObject } from "./subscriptions/channel/object.ts";
