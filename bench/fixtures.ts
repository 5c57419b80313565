/**
 * The bench's fixed FHIR payloads, built once and never changed: a ~2 KB
 * Patient, and a ~200 KB searchset of 100 Patients whose `link[].url` and
 * `entry[].fullUrl` carry the upstream's absolute base (what the edge must
 * rewrite). Shared by the node:http upstream and the micro-benchmarks in
 * workerd, so no Node or Workers API here. Only erasable TypeScript.
 */

import { notification } from "../test/fixtures/notifications.ts";

/** The FHIR base path the fixed upstream serves under. */
export const UPSTREAM_BASE_PATH = "/fhir/R4";
export const PATIENT_ID = "bench-1";
/** Search entries in the Bundle. */
export const SEARCHSET_ENTRIES = 100;
/** The upstream answers everything under this prefix (`/slow/fhir/R4/...`) this late (a timer, never blocking). */
export const SLOW_PREFIX = "/slow";
export const SLOW_DELAY_MS = 50;
/** `_count` of the aggregate rows: every source answers a searchset of this many entries. */
export const AGGREGATE_COUNT = 10;

/** The intake row's notification: the R5 id-only event-notification of the spec's example, carrying event `n`. */
export function intakeNotificationJson(n: number): string {
  return JSON.stringify(notification("R5", "event-notification", { events: [n] }));
}

/** A plausible US Core-ish Patient padded to a target size with more addresses and identifiers. */
export function patient(id: string, targetBytes = 2048): Record<string, unknown> {
  const resource: Record<string, unknown> = {
    resourceType: "Patient",
    id,
    meta: { versionId: "3", lastUpdated: "2026-10-01T12:00:00.000+00:00", profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"] },
    text: { status: "generated", div: `<div xmlns="http://www.w3.org/1999/xhtml">Patient ${id}</div>` },
    identifier: [
      { use: "usual", type: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "MR" }] }, system: "urn:oid:1.2.36.146.595.217.0.1", value: `MRN-${id}` },
    ],
    active: true,
    name: [{ use: "official", family: "Chalmers", given: ["Peter", "James"] }, { use: "usual", given: ["Jim"] }],
    telecom: [
      { system: "phone", value: "(03) 5555 6473", use: "work", rank: 1 },
      { system: "email", value: `${id}@example.org`, use: "home" },
    ],
    gender: "male",
    birthDate: "1974-12-25",
    address: [] as unknown[],
  };
  const addresses = resource.address as unknown[];
  const address = (i: number) => ({ use: i === 0 ? "home" : "old", type: "both", line: [`${534 + i} Erewhon St`], city: "PleasantVille", district: "Rainbow", state: "Vic", postalCode: "3999", period: { start: `${1974 + i}-12-25` } });
  for (let i = 0; JSON.stringify(resource).length + JSON.stringify(address(i)).length + 1 <= targetBytes; i++) addresses.push(address(i));
  // Pad the narrative so the serialised resource is exactly targetBytes (ASCII).
  const short = targetBytes - JSON.stringify(resource).length;
  if (short > 0) (resource.text as { div: string }).div = `<div xmlns="http://www.w3.org/1999/xhtml">Patient ${id}${" ".repeat(short)}</div>`;
  return resource;
}

/** The ~2 KB Patient, as the bytes the upstream sends. */
export function patientJson(): string {
  return JSON.stringify(patient(PATIENT_ID));
}

/**
 * A 100-entry searchset (~200 KB) as an upstream at `base` (absolute, no
 * trailing slash) would send it: self/next links and every fullUrl absolute.
 */
export function searchsetJson(base: string, entries = SEARCHSET_ENTRIES): string {
  const entry = [];
  for (let i = 1; i <= entries; i++) {
    const id = `bench-${i}`;
    entry.push({ fullUrl: `${base}/Patient/${id}`, resource: patient(id, 1950), search: { mode: "match" } });
  }
  return JSON.stringify({
    resourceType: "Bundle",
    id: "bench-searchset",
    meta: { lastUpdated: "2026-10-01T12:00:00.000+00:00" },
    type: "searchset",
    total: 1000,
    link: [
      { relation: "self", url: `${base}/Patient?_count=${entries}` },
      { relation: "next", url: `${base}/Patient?_count=${entries}&_offset=${entries}` },
      { relation: "last", url: `${base}/Patient?_count=${entries}&_offset=${1000 - entries}` },
    ],
    entry,
  });
}
