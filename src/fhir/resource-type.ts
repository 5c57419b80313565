/** A FHIR resource type name as the edge accepts it: `Patient`, `MedicationRequest`. */
export const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/**
 * Checks a library option keyed by resource type (`transforms`,
 * `aggregates`) once, when the edge is built.
 * @throws TypeError for a key that is not a resource type, or a value that is not a function
 */
export function handlersByType<H>(option: string, handlers: Readonly<Record<string, H>> | undefined): Map<string, H> {
  const byType = new Map<string, H>();
  for (const [type, handler] of Object.entries(handlers ?? {})) {
    if (!RESOURCE_TYPE.test(type)) throw new TypeError(`${option}: ${JSON.stringify(type)} is not a FHIR resource type`);
    if (typeof handler !== "function") throw new TypeError(`${option}.${type} must be a function`);
    byType.set(type, handler);
  }
  return byType;
}
