import type { Child } from "hono/jsx";
import { ago, asArray, asNumber, asObject, asString, isPast, label, scalar, timeLeft, type Json, type JsonObject } from "./format.ts";

/**
 * The status as a page: the same data `/status` answers as JSON, read
 * defensively (a field the relay adds later shows up under "more" until the
 * console names it). Never shows a token or a secret: the JSON holds none.
 */
export interface StatusViewProps {
  report: unknown;
  now: number;
  /** The edge's root path (its mount path, or ""), for links. */
  root: string;
}

type Health = "ok" | "warn" | "bad";

/** Fields each view renders itself; anything else scalar goes under "more". */
const SOURCE_FIELDS = new Set(["name", "state", "url", "auth", "reachability", "tokenCache", "token", "rewriteBodies", "retry", "timeoutSeconds", "issues"]);
const CHANNEL_FIELDS = new Set([
  "name",
  "state",
  "source",
  "sequencing",
  "subscriptionId",
  "lastEventNumber",
  "handshakeAt",
  "heartbeatAt",
  "lastNotificationAt",
  "pendingDeliveries",
  "heldOutOfOrder",
  "gaps",
  "targets",
  "subscribers",
  "issues",
  "error",
]);
const TARGET_FIELDS = new Set(["target", "cursor", "lastEvent", "pending", "delivered", "failures", "nextAttemptAt", "lastStatus", "dropped"]);

const Badge = ({ health, children }: { health: Health; children: Child }) => <span class={`badge ${health}`}>{children}</span>;

/** Scalar fields not rendered elsewhere, as more `dt`/`dd` pairs. */
function More({ value, known }: { value: JsonObject; known: ReadonlySet<string> }) {
  const rows = Object.entries(value)
    .filter(([k]) => !known.has(k))
    .map(([k, v]) => [k, scalar(v)] as const)
    .filter((r): r is readonly [string, string] => r[1] !== undefined);
  return (
    <>
      {rows.map(([k, v]) => (
        <>
          <dt>{label(k)}</dt>
          <dd>{v}</dd>
        </>
      ))}
    </>
  );
}

function Issues({ issues }: { issues: Json[] }) {
  return (
    <ul class="issues">
      {issues.map((raw) => {
        const issue = asObject(raw);
        const field = asString(issue.field);
        return (
          <li>
            {field ? (
              <>
                field <code>{field}</code>:{" "}
              </>
            ) : null}
            {asString(issue.message) ?? asString(issue.code) ?? "invalid"}
            {asString(issue.code) ? <span class="muted"> ({asString(issue.code)})</span> : null}
          </li>
        );
      })}
    </ul>
  );
}

function sourceHealth(source: JsonObject): Health {
  if (source.state !== "ok") return "bad";
  const reach = asObject(source.reachability);
  if (reach.reachable === false) return "bad";
  const token = asObject(source.token);
  if (asString(token.lastError) || asString(token.error)) return "warn";
  return "ok";
}

function SourceCard({ source, now }: { source: JsonObject; now: number }) {
  const name = asString(source.name) ?? "?";
  const health = sourceHealth(source);
  if (source.state !== "ok") {
    return (
      <article class="card bad" data-source={name}>
        <h3>
          {name} <Badge health="bad">misconfigured</Badge>
        </h3>
        <p>Requests to this source answer 500 until its configuration is fixed:</p>
        <Issues issues={asArray(source.issues)} />
      </article>
    );
  }
  const reach = asObject(source.reachability);
  const status = asNumber(reach.status);
  const ms = asNumber(reach.ms);
  const token = source.token === undefined ? undefined : asObject(source.token);
  const retry = asObject(source.retry);
  return (
    <article class={`card ${health}`} data-source={name}>
      <h3>
        {name} <Badge health={reach.reachable === false ? "bad" : "ok"}>{reach.reachable === false ? "unreachable" : "reachable"}</Badge>
      </h3>
      <dl>
        <dt>base URL</dt>
        <dd>
          <code>{asString(source.url) ?? ""}</code>
        </dd>
        <dt>auth</dt>
        <dd>{asString(source.auth) ?? "unknown"}</dd>
        <dt>reachability</dt>
        <dd>
          {reach.reachable === undefined
            ? "not checked"
            : `${reach.reachable ? "answered" : "failed"}${status !== undefined ? ` HTTP ${status}` : ""}${asString(reach.error) ? ` (${asString(reach.error)})` : ""}${
                ms !== undefined ? ` in ${ms} ms` : ""
              }, checked ${ago(reach.checkedAt, now)}`}
        </dd>
        {token ? (
          <>
            <dt>token</dt>
            <dd>
              {asString(token.error) ??
                (asString(token.expiresAt) ? `expires ${timeLeft(token.expiresAt, now)}` : "none fetched yet")}
              {asString(token.refreshAt) && !isPast(token.refreshAt, now) ? `; refresh ${timeLeft(token.refreshAt, now)}` : ""}
              {asNumber(token.tokenFetches) !== undefined ? `; ${asNumber(token.tokenFetches)} fetched` : ""}
              {asString(token.lastError) ? <span class="error"> last error: {asString(token.lastError)}</span> : null}
            </dd>
            <dt>token cache</dt>
            <dd>{asString(source.tokenCache) ?? ""}</dd>
          </>
        ) : null}
        <dt>retries</dt>
        <dd>
          {asNumber(retry.maxAttempts) === 1 ? "1 attempt" : `${asNumber(retry.maxAttempts) ?? "?"} attempts`}, timeout {asNumber(source.timeoutSeconds) ?? "?"} s, rewrite {asString(source.rewriteBodies) ?? "bundles"}
        </dd>
        <More value={source} known={SOURCE_FIELDS} />
      </dl>
    </article>
  );
}

/**
 * How far a target is behind: the relay's own pending count when it gives one
 * (deliveries), else whether events past its position exist (a count of
 * event numbers would overstate it: given-up gaps hold no deliveries).
 */
function behindBy(target: JsonObject, lastEventNumber: number | undefined): number | undefined {
  const pending = asNumber(target.pending);
  if (pending !== undefined) return pending;
  if (lastEventNumber === undefined) return undefined;
  return (asNumber(target.lastEvent) ?? 0) < lastEventNumber ? 1 : 0;
}

function channelHealth(channel: JsonObject): Health {
  if (channel.state !== "ok" || asString(channel.error)) return "bad";
  const last = asNumber(channel.lastEventNumber);
  const behind = asArray(channel.targets).some((t) => (behindBy(asObject(t), last) ?? 0) > 0 || (asNumber(asObject(t).failures) ?? 0) > 0);
  return behind || asArray(channel.gaps).length > 0 ? "warn" : "ok";
}

function replayLink(root: string, channel: string, since: number): string {
  return `${root}/admin/channels/${encodeURIComponent(channel)}/events?since=${since}`;
}

function pendingCell(target: JsonObject, behind: number | undefined): Child {
  if (behind === undefined) return "?";
  if (behind === 0) return "0";
  const pending = asNumber(target.pending);
  return <Badge health="warn">{pending !== undefined ? `${pending} behind` : "behind"}</Badge>;
}

function TargetsTable({ channel, root, lastEventNumber, at }: { channel: JsonObject; root: string; lastEventNumber: number | undefined; at: number }) {
  const name = asString(channel.name) ?? "";
  const targets = asArray(channel.targets).map(asObject);
  if (targets.length === 0) return <p class="muted">No targets.</p>;
  return (
    <div class="scroll">
      <table>
        <thead>
          <tr>
            <th>target</th>
            <th>last event</th>
            <th>pending</th>
            <th>failures</th>
            <th>next attempt</th>
            <th>dropped</th>
            <th>last status</th>
            <th>delivered</th>
            <th>replay</th>
          </tr>
        </thead>
        <tbody>
          {targets.map((t) => {
            const behind = behindBy(t, lastEventNumber);
            const failures = asNumber(t.failures) ?? 0;
            const lastEvent = asNumber(t.lastEvent);
            const more = Object.entries(t).filter(([k, v]) => !TARGET_FIELDS.has(k) && scalar(v) !== undefined);
            return (
              <tr class={(behind ?? 0) > 0 || failures > 0 ? "behind" : ""} data-target={asString(t.target) ?? ""}>
                <td>
                  <code>{asString(t.target) ?? "?"}</code>
                  {more.length > 0 ? <div class="muted">{more.map(([k, v]) => `${label(k)}: ${scalar(v)}`).join("; ")}</div> : null}
                </td>
                <td class="num">{lastEvent ?? "none"}</td>
                <td class="num">{pendingCell(t, behind)}</td>
                <td class="num">{failures > 0 ? <Badge health="bad">{String(failures)}</Badge> : "0"}</td>
                <td>{asString(t.nextAttemptAt) ? ago(t.nextAttemptAt, at) : "none"}</td>
                <td class="num">{asNumber(t.dropped) ?? 0}</td>
                <td>{asString(t.lastStatus) ?? "none"}</td>
                <td class="num">{asNumber(t.delivered) ?? 0}</td>
                <td>
                  <a href={replayLink(root, name, lastEvent ?? 0)}>from #{lastEvent ?? 0}</a>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function GapsTable({ gaps, at }: { gaps: JsonObject[]; at: number }) {
  return (
    <div class="scroll">
      <table>
        <thead>
          <tr>
            <th>events</th>
            <th>why given up</th>
            <th>when</th>
          </tr>
        </thead>
        <tbody>
          {gaps.map((g) => (
            <tr data-gap={`${asNumber(g.from) ?? "?"}-${asNumber(g.to) ?? "?"}`}>
              <td class="num">
                {asNumber(g.from) === asNumber(g.to) ? `#${asNumber(g.from) ?? "?"}` : `#${asNumber(g.from) ?? "?"}–#${asNumber(g.to) ?? "?"}`}
              </td>
              <td>{asString(g.outcome) ?? asString(g.reason) ?? "unknown"}</td>
              <td>{ago(g.at, at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The inbox's open connections in one line: how many, and each client's acked position (and since when it stalls, if it does). */
function subscribersText(subscribers: JsonObject[], at: number): string {
  if (subscribers.length === 0) return "none connected";
  const each = subscribers.map((s) => {
    const stalled = asString(s.stalledSince) ? `, window full ${ago(s.stalledSince, at).replace(/ ago$/, "")}` : "";
    return `${asString(s.client) ?? "?"} (acked ${asNumber(s.acked) ?? 0}${stalled})`;
  });
  return `${subscribers.length}: ${each.join(", ")}`;
}

function ChannelCard({ channel, root, at }: { channel: JsonObject; root: string; at: number }) {
  const name = asString(channel.name) ?? "?";
  const health = channelHealth(channel);
  if (channel.state !== "ok") {
    return (
      <article class="card bad channel" data-channel={name}>
        <h3>
          {name} <Badge health="bad">misconfigured</Badge>
        </h3>
        <Issues issues={asArray(channel.issues)} />
      </article>
    );
  }
  const last = asNumber(channel.lastEventNumber);
  const gaps = asArray(channel.gaps).map(asObject);
  const behind = asArray(channel.targets).filter((t) => (behindBy(asObject(t), last) ?? 0) > 0).length;
  return (
    <article class={`card ${health} channel`} data-channel={name}>
      <h3>
        {name}
        {asString(channel.error) ? <Badge health="bad">{asString(channel.error)!}</Badge> : null}
        {behind > 0 ? <Badge health="warn">{`${behind} target${behind > 1 ? "s" : ""} behind`}</Badge> : null}
        {gaps.length > 0 ? <Badge health="warn">{`${gaps.length} gap${gaps.length > 1 ? "s" : ""} given up`}</Badge> : null}
        {health === "ok" ? <Badge health="ok">in step</Badge> : null}
      </h3>
      <dl>
        <dt>source</dt>
        <dd>{asString(channel.source) ?? "?"}</dd>
        <dt>sequencing</dt>
        <dd>{asString(channel.sequencing) ?? "strict"}</dd>
        <dt>subscription</dt>
        <dd>{asString(channel.subscriptionId) ?? <span class="muted">not known yet</span>}</dd>
        <dt>last event</dt>
        <dd>
          #{last ?? 0}, last notification {ago(channel.lastNotificationAt, at)}
        </dd>
        <dt>handshake</dt>
        <dd>{ago(channel.handshakeAt, at)}</dd>
        <dt>heartbeat</dt>
        <dd>{ago(channel.heartbeatAt, at)}</dd>
        <dt>pending deliveries</dt>
        <dd>{asNumber(channel.pendingDeliveries) ?? 0}</dd>
        <dt>held out of order</dt>
        <dd>{asNumber(channel.heldOutOfOrder) ?? 0}</dd>
        {Array.isArray(channel.subscribers) ? (
          <>
            <dt>WebSocket subscribers</dt>
            <dd>{subscribersText(asArray(channel.subscribers).map(asObject), at)}</dd>
          </>
        ) : null}
        <More value={channel} known={CHANNEL_FIELDS} />
      </dl>
      <h4>Targets</h4>
      <TargetsTable channel={channel} root={root} lastEventNumber={last} at={at} />
      {gaps.length > 0 ? (
        <>
          <h4>Gaps given up</h4>
          <GapsTable gaps={gaps} at={at} />
        </>
      ) : null}
      <p>
        <a href={replayLink(root, name, 0)}>Replay the retained notifications</a> <span class="muted">(a FHIR collection Bundle)</span>
      </p>
    </article>
  );
}

function Summary({ sources, channels, errors }: { sources: JsonObject[]; channels: JsonObject[]; errors: number }) {
  const down = sources.filter((s) => s.state === "ok" && sourceHealth(s) === "bad").length;
  const broken = sources.filter((s) => s.state !== "ok").length + channels.filter((c) => c.state !== "ok").length;
  const lagging = channels.filter((c) => channelHealth(c) === "warn").length;
  const allGood = down === 0 && broken === 0 && lagging === 0 && errors === 0;
  return (
    <section class="summary" aria-label="summary">
      <Badge health="ok">{`${sources.length} source${sources.length === 1 ? "" : "s"}, ${channels.length} channel${channels.length === 1 ? "" : "s"}`}</Badge>
      {allGood ? <Badge health="ok">all well</Badge> : null}
      {down > 0 ? <Badge health="bad">{`${down} unreachable`}</Badge> : null}
      {broken > 0 ? <Badge health="bad">{`${broken} misconfigured`}</Badge> : null}
      {lagging > 0 ? <Badge health="warn">{`${lagging} channel${lagging > 1 ? "s need" : " needs"} attention`}</Badge> : null}
      {errors > 0 ? <Badge health="bad">{`${errors} configuration error${errors > 1 ? "s" : ""}`}</Badge> : null}
    </section>
  );
}

/** The part of the console that refreshes: everything below the header. */
export function StatusView({ report, now: at, root }: StatusViewProps) {
  const data = asObject(report);
  const sources = asArray(data.sources).map(asObject);
  const channels = asArray(data.channels).map(asObject);
  const errors = asArray(data.configurationErrors).map(asObject);
  const aggregate = asObject(data.aggregate);
  const consoleInfo = asObject(data.console);
  return (
    <>
      <Summary sources={sources} channels={channels} errors={errors.length} />
      {errors.length > 0 ? (
        <section>
          <h2>Configuration errors</h2>
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th>where</th>
                  <th>field</th>
                  <th>problem</th>
                </tr>
              </thead>
              <tbody>
                {errors.map((e) => (
                  <tr>
                    <td>{asString(e.subject) ?? "edge"}</td>
                    <td>{asString(e.field) ? <code>{asString(e.field)!}</code> : <span class="muted">none</span>}</td>
                    <td>
                      {asString(e.message) ?? ""} <span class="muted">({asString(e.code) ?? "?"})</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ) : null}
      <section>
        <h2>Sources</h2>
        {sources.length === 0 ? <p class="muted">No sources configured.</p> : null}
        <div class="cards">
          {sources.map((s) => (
            <SourceCard source={s} now={at} />
          ))}
        </div>
      </section>
      <section>
        <h2>Channels</h2>
        {channels.length === 0 ? <p class="muted">No channels configured (FHIR_CHANNELS).</p> : null}
        {channels.map((c) => (
          <ChannelCard channel={c} root={root} at={at} />
        ))}
      </section>
      <section>
        <h2>Edge</h2>
        <dl>
          <dt>client auth</dt>
          <dd>{asString(data.auth) ?? "?"}</dd>
          <dt>public URL</dt>
          <dd>{asString(data.publicUrl) ?? <span class="muted">the request's origin</span>}</dd>
          <dt>access log</dt>
          <dd>{asString(data.accessLog) ?? "?"}</dd>
          <dt>aggregate cursor key</dt>
          <dd>{asString(aggregate.cursorKey) ?? "?"}</dd>
          {asString(consoleInfo.sessionKey) ? (
            <>
              <dt>console session key</dt>
              <dd>{asString(consoleInfo.sessionKey)!}</dd>
            </>
          ) : null}
        </dl>
      </section>
      <p class="muted">As of {new Date(at).toISOString()}.</p>
    </>
  );
}
