import { createEdge } from "./app.ts";

export { createEdge, type EdgeOptions } from "./app.ts";
export { readEdgeConfig, type EdgeConfig } from "./config/edge-config.ts";
export type { SourceConfig, ConfigIssue } from "./config/types.ts";
export { EdgeError } from "./errors.ts";

/** The deployable Worker: the edge with its defaults. */
export default createEdge();
export { TokenCoordinator } from "./auth/upstream/token-coordinator.ts";
export { ChannelObject } from "./subscriptions/channel-object.ts";
