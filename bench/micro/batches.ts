/** Shared by the micro-benchmarks (in workerd) and the report (in Node): how many calls one sample makes. */
export const CONNECTION_BATCH = 100;
export const BACKOFF_BATCH = 1000;
/** Notifications classified per sample (each with a countGap). */
export const GAP_BATCH = 1000;
/** The upstream base in the micro-benchmarks' Bundle. */
export const MICRO_UPSTREAM = "http://127.0.0.1:8080/fhir/R4";
