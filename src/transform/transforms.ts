import type { EdgeBindings } from "../context.ts";
import { TransformFailedError } from "../errors.ts";
import type { Resource } from "../fhir/types.ts";
import { handlersByType } from "../fhir/resource-type.ts";

/** What a transform handler is told besides the resource. */
export interface TransformContext {
  /** The resource type the handler was registered for. */
  resourceType: string;
  /** The source the resource came from. */
  source: string;
  requestId: string;
  env: EdgeBindings;
}

/**
 * Changes a resource of one type on its way from a source to the client
 * (HealthChain's transform handlers, applied inline). Receives the resource
 * as the client would get it (URLs already pointing at the edge) and returns
 * the resource to send: the same object changed, or a new one.
 */
export type TransformHandler = (resource: Resource, context: TransformContext) => Resource | Promise<Resource>;

/** Transform handlers by resource type: `{ Patient: (p) => ({ ...p, active: true }) }`. */
export type TransformHandlers = Readonly<Record<string, TransformHandler>>;

export interface Transformer {
  /** Whether a handler is registered for this type: a single resource is only buffered then. */
  has(resourceType: string | undefined): boolean;
  /** Applies the handlers to a resource and, in a Bundle, to each entry's resource (nested Bundles too). */
  apply(resource: Resource, context: Omit<TransformContext, "resourceType">): Promise<Resource>;
  /** {@link apply} on a JSON text; text that is not JSON, or holds nothing to change, comes back as it was. */
  applyToText(text: string, context: Omit<TransformContext, "resourceType">): Promise<string>;
}

const MAX_DEPTH = 3;

/**
 * Compiles the handlers given to `createEdge({ transforms })`, once; undefined
 * when there are none, so the proxy's hot path pays one comparison.
 * @throws TypeError for a key that is not a resource type, or a value that is not a function
 */
export function compileTransforms(handlers: TransformHandlers | undefined): Transformer | undefined {
  const byType = handlersByType("transforms", handlers);
  if (byType.size === 0) return undefined;
  const mention = new RegExp(`"resourceType"\\s*:\\s*"(?:${[...byType.keys()].join("|")})"`);

  async function apply(resource: Resource, context: Omit<TransformContext, "resourceType">, depth: number): Promise<Resource> {
    if (resource.resourceType === "Bundle" && Array.isArray(resource.entry) && depth < MAX_DEPTH) {
      await Promise.all(
        (resource.entry as Array<{ resource?: unknown }>).map(async (entry) => {
          const inner = entry?.resource as Resource | undefined;
          if (inner && typeof inner === "object" && typeof inner.resourceType === "string") entry.resource = await apply(inner, context, depth + 1);
        }),
      );
    }
    const handler = byType.get(resource.resourceType);
    if (!handler) return resource;
    let changed: Resource;
    try {
      changed = await handler(resource, { ...context, resourceType: resource.resourceType });
    } catch (error) {
      // The error's name only: its message may quote the resource.
      console.error(JSON.stringify({ msg: "transform failed", requestId: context.requestId, source: context.source, resourceType: resource.resourceType, error: error instanceof Error ? error.name : typeof error }));
      throw new TransformFailedError(resource.resourceType, error);
    }
    if (changed === null || typeof changed !== "object" || typeof changed.resourceType !== "string") {
      throw new TransformFailedError(resource.resourceType, new TypeError("the handler did not return a resource"));
    }
    return changed;
  }

  return {
    has: (type) => type !== undefined && byType.has(type),
    apply: (resource, context) => apply(resource, context, 0),
    async applyToText(text, context) {
      if (!mention.test(text)) return text;
      let parsed: Resource;
      try {
        parsed = JSON.parse(text) as Resource;
      } catch {
        return text;
      }
      if (parsed === null || typeof parsed !== "object" || typeof parsed.resourceType !== "string") return text;
      return JSON.stringify(await apply(parsed, context, 0));
    },
  };
}
