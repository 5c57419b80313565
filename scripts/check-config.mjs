#!/usr/bin/env node
/**
 * `npm run check-config [-- --env NAME] [--config wrangler.toml] [--vars .dev.vars] [--assume-secrets]`
 *
 * Validates, offline, the sources and edge settings that wrangler.toml (plus
 * .dev.vars) declare, with the very parser the Worker uses. Prints every
 * problem (never a value) and exits 1 if there is any.
 *
 * A source may refer to a secret that only exists in Cloudflare (`env:NAME`,
 * set with `wrangler secret put`); with --assume-secrets such references are
 * listed as assumed instead of failing the check.
 */
import { existsSync, readFileSync } from "node:fs";
import { unstable_readConfig } from "wrangler";
import { readEdgeConfig } from "../src/config/edge-config.ts";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const configPath = option("--config", "wrangler.toml");
const envName = option("--env", undefined);
const varsPath = option("--vars", envName ? `.dev.vars.${envName}` : ".dev.vars");
const assumeSecrets = args.includes("--assume-secrets");

/** dotenv-style KEY=VALUE lines, as wrangler reads .dev.vars. */
export function parseDevVars(text) {
  const vars = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq === -1) continue;
    const key = line.slice(0, eq).trim().replace(/^export\s+/, "");
    let value = line.slice(eq + 1).trim();
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1);
      if (raw.includes('"')) value = value.replace(/\\n/g, "\n");
    }
    vars[key] = value;
  }
  return vars;
}

const config = unstable_readConfig({ config: configPath, ...(envName ? { env: envName } : {}) });
const env = { ...config.vars };
// Rate-limit bindings exist only at run time: stand in for the ones wrangler.toml declares, so
// PROXY_RATE_LIMITS naming an undeclared one is reported.
for (const limiter of config.ratelimits ?? []) env[limiter.name] = { limit: async () => ({ success: true }) };
if (existsSync(varsPath)) Object.assign(env, parseDevVars(readFileSync(varsPath, "utf8")));

const edge = readEdgeConfig(env);
// Offline, secrets set with `wrangler secret put` are absent; --assume-secrets trusts they exist.
const assumed = assumeSecrets ? edge.issues.filter((i) => i.code === "missing-binding" || i.code === "no-api-keys") : [];
const issues = edge.issues.filter((i) => !assumed.includes(i));

console.log(`fhir-edge configuration: ${configPath}${envName ? ` [env ${envName}]` : ""}${existsSync(varsPath) ? ` + ${varsPath}` : ""}`);
console.log(`client auth: ${edge.inbound?.mode ?? "misconfigured"}`);
for (const source of edge.sources.values()) console.log(`  ok   ${source.name}  ${source.baseUrl}  (auth: ${source.auth.kind})`);
for (const [name, problems] of edge.brokenSources) {
  const onlyAssumed = problems.every((p) => assumed.some((a) => a.subject === p.subject && a.field === p.field && a.code === p.code));
  console.log(`  ${onlyAssumed ? "ok*" : "FAIL"} ${name}`);
}
for (const channel of edge.channels.values()) console.log(`  ok   channel ${channel.name}  (source ${channel.source}, ${channel.targets.length} target${channel.targets.length === 1 ? "" : "s"})`);
for (const name of edge.brokenChannels.keys()) console.log(`  FAIL channel ${name}`);
for (const i of assumed) console.log(`  * assumed to be set as a secret: ${i.subject === "PROXY_API_KEYS" ? "PROXY_API_KEYS" : `${i.subject} ${i.field}`}`);
if (issues.length === 0) {
  console.log("no configuration errors");
  process.exit(0);
}
console.log(`${issues.length} configuration error${issues.length > 1 ? "s" : ""}:`);
for (const i of issues) console.log(`  - [${i.code}] ${i.subject}${i.field ? ` (${i.field})` : ""}: ${i.message}`);
process.exit(1);
