/**
 * globalSetup of the workerd `unit` project: starts the loopback peers the relay tests talk to
 * (workerd reaches 127.0.0.1) and provides their ports to the project's bindings. Stopped in
 * teardown.
 */
import type { TestProject } from "vitest/node";
import { startSubscriptionSource, type SubscriptionSource } from "../../../peers/subscription-source.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../../../peers/webhook-receiver.ts";

let receiver: WebhookReceiver | undefined;
let source: SubscriptionSource | undefined;

export async function setup(project: TestProject): Promise<void> {
  receiver = await startWebhookReceiver();
  source = await startSubscriptionSource();
  project.provide("receiverPort", receiver.port);
  project.provide("sourcePort", source.port);
}

export async function teardown(): Promise<void> {
  await receiver?.close();
  await source?.close();
}

declare module "vitest" {
  export interface ProvidedContext {
    receiverPort: number;
    sourcePort: number;
  }
}
