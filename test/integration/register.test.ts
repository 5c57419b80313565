/**
 * Managed subscriptions (docs/contract.md#subscription-notifications-in-post-webhookschannel; fhir-tbs parity): `POST
 * /admin/channels/:channel/register` creates, then updates, the channel's
 * Subscription on the real FHIR server (Medplum's router), which the test reads back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startEdge, type Edge } from "./support/edge.ts";

const ADMIN = "register-admin-key";
const SECRET = "register-channel-secret";
let fhir: FhirServer;
let edge: Edge;

beforeAll(async () => {
  fhir = await startFhirServer();
  const channel = (fhirVersion: string) => ({
    source: "ehr",
    topic: "http://example.org/SubscriptionTopic/encounter-start",
    filterBy: [{ resourceType: "Encounter", filterParameter: "status", value: "in-progress" }],
    payload: "id-only",
    heartbeatPeriod: 20,
    timeout: 60,
    fhirVersion,
    secret: "env:CHANNEL_SECRET",
    targets: [{ url: "https://app.example/hook" }],
  });
  edge = await startEdge(
    {
      PROXY_API_KEYS: `ops:${ADMIN},app:app-key-1`,
      PROXY_ADMIN_CLIENTS: "ops",
      PUBLIC_URL: "https://edge.example.org",
      FHIR_SOURCE_EHR: `fhir+http://${new URL(fhir.url).host}/fhir/R4`,
      FHIR_CHANNELS: JSON.stringify({ encounters: channel("R4"), encounters5: channel("R5") }),
    },
    { CHANNEL_SECRET: SECRET },
  );
});

afterAll(async () => {
  await edge?.close();
  await fhir?.close();
});

const register = (channel: string, key = ADMIN) => edge.fetch(`/admin/channels/${channel}/register`, { method: "POST", headers: { "X-Api-Key": key } });

describe("POST /admin/channels/:channel/register", () => {
  it("admin clients only", async () => {
    expect((await register("encounters", "app-key-1")).status).toBe(403);
    expect((await edge.fetch("/admin/channels/encounters/register", { method: "POST" })).status).toBe(401);
  });

  it("creates an R4 backport Subscription pointing at the edge's webhook, with the secret as a header; the answer hides the secret", async () => {
    const res = await register("encounters");
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text).not.toContain(SECRET);
    const { id } = JSON.parse(text) as { id: string };
    const stored = (await (await fetch(`${fhir.url}/Subscription/${id}`)).json()) as Record<string, any>;
    expect(stored.meta.profile).toContain("http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription");
    expect(stored.criteria).toBe("http://example.org/SubscriptionTopic/encounter-start");
    expect(stored._criteria.extension[0]).toEqual({ url: "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", valueString: "Encounter?status=in-progress" });
    expect(stored.channel).toMatchObject({ type: "rest-hook", endpoint: "https://edge.example.org/webhooks/encounters", payload: "application/fhir+json", header: [`X-Api-Key: ${SECRET}`] });
    expect(stored.channel._payload.extension[0].valueCode).toBe("id-only");
    expect(stored.channel.extension).toEqual(
      expect.arrayContaining([
        { url: "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", valueUnsignedInt: 20 },
        { url: "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout", valueUnsignedInt: 60 },
      ]),
    );
  });

  it("registering again updates the same Subscription", async () => {
    const first = (await (await register("encounters")).json()) as { id: string };
    const again = await register("encounters");
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(first.id);
    const all = (await (await fetch(`${fhir.url}/Subscription?_count=100`)).json()) as { entry?: Array<{ resource: { reason?: string } }> };
    expect(all.entry?.filter((e) => e.resource.reason === "fhir-edge channel encounters")).toHaveLength(1);
  });

  it("builds the R5 form for an R5 channel", async () => {
    const res = await register("encounters5");
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, any>;
    // Medplum stores R4; the request the edge sent is the R5 shape.
    const sent = JSON.parse(fhir.requests.filter((r) => r.method === "POST" && r.path.endsWith("/Subscription")).at(-1)!.body) as Record<string, any>;
    expect(sent).toMatchObject({
      topic: "http://example.org/SubscriptionTopic/encounter-start",
      filterBy: [{ resourceType: "Encounter", filterParameter: "status", value: "in-progress" }],
      channelType: { code: "rest-hook" },
      endpoint: "https://edge.example.org/webhooks/encounters5",
      heartbeatPeriod: 20,
      timeout: 60,
      content: "id-only",
      parameter: [{ name: "X-Api-Key", value: SECRET }],
    });
    expect(JSON.stringify(body)).not.toContain(SECRET);
  });
});
