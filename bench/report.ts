/**
 * Writes bench/results.md (machine, versions, commands, tables, targets)
 * and bench/results.svg (req/s and p99 per row, drawn from the same
 * numbers; plain SVG, no chart library).
 * Only erasable TypeScript: Node runs this file as it is.
 */
import type { Summary } from "./stats.ts";
import { MEASURED_AGAINST_BARE, PAYLOADS, type Target } from "./targets.ts";

export interface RowResult {
  target: Target;
  /** Undefined when the row was skipped (see `skipped`). */
  latency?: Summary;
  throughput?: Summary;
  skipped?: string;
}

export interface MicroResult {
  name: string;
  label: string;
  /** Milliseconds per operation. */
  msPerOp: number;
  /** Bytes processed per operation, for MB/s. */
  bytes?: number;
}

export interface TargetCheck {
  goal: string;
  measured: string;
  met: boolean | undefined;
}

export interface DrainResult {
  channel: string;
  /** Event numbers sent (1..sent), the last one included. */
  sent: number;
  /** Notifications the edge acknowledged (2xx), as the load generator saw the answers: a run's last in-flight requests are not counted. */
  accepted: number;
  /** Deliveries per target when the load ended. */
  atLoadEnd: Record<string, number>;
  /** Deliveries per target when it received the last event (or at the timeout). */
  atLast: Record<string, number>;
  /** From the end of the load to the last target having the last event; undefined on timeout. */
  lastEventMs: number | undefined;
  /** Per target: acknowledged events it never received. */
  missing: Record<string, number>;
  /** Every target had the last event and every acknowledged one. */
  complete: boolean;
  summary: string;
}

export interface Report {
  date: string;
  durationSeconds: number;
  machine: string[];
  versions: string[];
  method: string[];
  commands: string[];
  highConcurrency: number;
  rows: RowResult[];
  /** Rows that need words beyond the tables (aggregation, subscription intake, open loop, Bulk Data): bullets, then any markdown (a table). */
  sections: Array<{ title: string; lines: string[]; markdown?: string[] }>;
  targets: TargetCheck[];
  token: string[];
  micro: MicroResult[];
  bundle: { rawBytes: number; gzipBytes: number; budgetBytes: number; files: string[] };
  notes: string[];
}

const fmt = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n) ? "–" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (n: number | undefined): string => (n === undefined ? "–" : n < 10 ? fmt(n, 2) : fmt(n, 1));
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || !b ? "–" : `${(a / b).toFixed(2)}x`);
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;

/** The row of the same payload reached through `via`, for ratios. */
function peer(rows: RowResult[], row: RowResult, via: Target["via"]): RowResult | undefined {
  return rows.find((r) => r.target.payload === row.target.payload && r.target.via === via && !r.target.oauth && !r.target.rewritten && !r.skipped);
}

export function renderMarkdown(report: Report): string {
  const { rows } = report;
  const lines: string[] = [];
  lines.push("# fhir-edge benchmark results", "");
  lines.push(
    `Written by \`npm run bench\` on ${report.date} (${Math.round(report.durationSeconds)} s end to end). ` +
      "Every number below comes from this one run on this one machine; compare rows with each other, not with other machines.",
    "",
  );
  lines.push("![req/s and p99 per row](results.svg)", "");
  lines.push("## Machine and versions", "");
  for (const m of [...report.machine, ...report.versions]) lines.push(`- ${m}`);
  lines.push("", "## Method", "");
  for (const m of report.method) lines.push(`- ${m}`);
  lines.push("", "Commands (one of each shape; every row and repetition runs the same way):", "", "```sh");
  lines.push(...report.commands);
  lines.push("```", "");

  lines.push(`## Throughput: ${report.highConcurrency} connections`, "");
  lines.push("Medians over the repetitions; the req/s range is min–max. Ratios are req/s over the row of the same payload.", "");
  lines.push("| row | payload | req/s | range | p50 ms | p99 ms | × direct | × nginx | × bare Worker | proxy CPU ms/req | other load on proxy core |");
  lines.push("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const row of rows) {
    const t = row.throughput;
    if (row.skipped || !t) {
      lines.push(`| ${row.target.label} | ${PAYLOADS[row.target.payload]} | skipped: ${row.skipped ?? "no data"} | | | | | | | | |`);
      continue;
    }
    const direct = peer(rows, row, "direct")?.throughput?.rps;
    const nginx = peer(rows, row, "nginx")?.throughput?.rps;
    const bare = peer(rows, row, "bare-worker")?.throughput?.rps;
    const isEdge = MEASURED_AGAINST_BARE.has(row.target.via);
    lines.push(
      `| ${row.target.label} | ${PAYLOADS[row.target.payload]} | ${fmt(t.rps)} | ${fmt(t.rpsMin)}–${fmt(t.rpsMax)} | ${ms(t.p50Ms)} | ${ms(t.p99Ms)} | ` +
        `${ratio(t.rps, direct)} | ${ratio(t.rps, nginx)} | ${isEdge ? ratio(t.rps, bare) : "–"} | ${t.proxyCpuMsPerRequest === undefined ? "–" : fmt(t.proxyCpuMsPerRequest, 3)} | ` +
        `${t.foreignLoad === undefined || row.target.via === "direct" ? "–" : `${Math.round(t.foreignLoad * 100)}%`} |`,
    );
  }
  lines.push("", "## Latency: 1 connection", "");
  lines.push("| row | payload | req/s | p50 ms | p99 ms | p50 added to direct, ms | × direct (req/s) | × nginx (req/s) |");
  lines.push("|---|---|---:|---:|---:|---:|---:|---:|");
  for (const row of rows) {
    const l = row.latency;
    if (row.skipped || !l) {
      lines.push(`| ${row.target.label} | ${PAYLOADS[row.target.payload]} | skipped: ${row.skipped ?? "no data"} | | | | | |`);
      continue;
    }
    const direct = peer(rows, row, "direct")?.latency;
    const nginx = peer(rows, row, "nginx")?.latency;
    lines.push(
      `| ${row.target.label} | ${PAYLOADS[row.target.payload]} | ${fmt(l.rps)} | ${ms(l.p50Ms)} | ${ms(l.p99Ms)} | ` +
        `${direct ? (row.target.via === "direct" ? "–" : fmt(l.p50Ms - direct.p50Ms, 2)) : "–"} | ${ratio(l.rps, direct?.rps)} | ${ratio(l.rps, nginx?.rps)} |`,
    );
  }
  const failures = rows.filter((r) => (r.throughput?.errors ?? 0) + (r.throughput?.badStatus ?? 0) + (r.latency?.errors ?? 0) + (r.latency?.badStatus ?? 0) > 0);
  lines.push("");
  lines.push(
    failures.length === 0
      ? "Every request of every run was answered 2xx without socket errors."
      : `**Errors or non-2xx answers** in: ${failures
          .map((r) => {
            const bad = (r.throughput?.badStatus ?? 0) + (r.latency?.badStatus ?? 0);
            const errors = (r.throughput?.errors ?? 0) + (r.latency?.errors ?? 0);
            return `${r.target.label}, ${PAYLOADS[r.target.payload]} (${bad} answers with status ≥ 400, ${errors} socket errors or timeouts)`;
          })
          .join("; ")}. Those rows' numbers are not comparable.`,
  );

  for (const section of report.sections) {
    lines.push("", `## ${section.title}`, "");
    for (const l of section.lines) lines.push(`- ${l}`);
    if (section.markdown) lines.push("", ...section.markdown);
  }

  lines.push("", "## Targets (issue 6)", "");
  lines.push("| target | measured | met |", "|---|---|---|");
  for (const t of report.targets) lines.push(`| ${t.goal} | ${t.measured} | ${t.met === undefined ? "–" : t.met ? "yes" : "**no**"} |`);

  lines.push("", "## Token endpoint", "");
  for (const t of report.token) lines.push(`- ${t}`);

  lines.push("", "## Micro-benchmarks (inside workerd, vitest bench)", "");
  lines.push("| function | per operation | throughput |", "|---|---:|---:|");
  for (const m of report.micro) {
    const per = m.msPerOp >= 0.1 ? `${fmt(m.msPerOp, 3)} ms` : m.msPerOp >= 0.0001 ? `${fmt(m.msPerOp * 1000, 2)} µs` : `${fmt(m.msPerOp * 1e6, 0)} ns`;
    const through = m.bytes ? `${fmt(m.bytes / (m.msPerOp / 1000) / 1e6, 0)} MB/s` : `${fmt(1000 / m.msPerOp, 0)} ops/s`;
    lines.push(`| ${m.label} | ${per} | ${through} |`);
  }

  lines.push("", "## Bundle size", "");
  lines.push(
    `\`wrangler deploy --dry-run --outdir\`: ${report.bundle.files.join(", ")}, ${kib(report.bundle.rawBytes)} raw, ` +
      `**${kib(report.bundle.gzipBytes)} gzip** (budget ${kib(report.bundle.budgetBytes)} gzip, checked by test/integration/bundle-size.test.ts).`,
  );
  lines.push("", "## Notes", "");
  for (const n of report.notes) lines.push(`- ${n}`);
  lines.push("");
  return lines.join("\n");
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Two horizontal bar panels, req/s and p99 at the high concurrency, one bar per measured row. */
export function renderSvg(report: Report): string {
  const rows = report.rows.filter((r) => !r.skipped && r.throughput);
  const barH = 18;
  const gap = 8;
  const groupGap = 22;
  const labelW = 290;
  const panelW = 300;
  const top = 56;
  const colors: Record<string, string> = { direct: "#7f8c8d", nginx: "#2e86c1", "bare-worker": "#af7ac5", "floor-worker": "#48c9b0", edge: "#e67e22" };
  let y = top;
  const positions: Array<{ row: RowResult; y: number }> = [];
  let lastPayload: string | undefined;
  for (const row of rows) {
    if (lastPayload !== undefined && row.target.payload !== lastPayload) y += groupGap;
    if (row.target.payload !== lastPayload) y += 16;
    lastPayload = row.target.payload;
    positions.push({ row, y });
    y += barH + gap;
  }
  const height = y + 40;
  const width = labelW + 2 * panelW + 120;
  const maxRps = Math.max(...rows.map((r) => r.throughput!.rps));
  const maxP99 = Math.max(...rows.map((r) => r.throughput!.p99Ms));
  const x1 = labelW;
  const x2 = labelW + panelW + 60;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">fhir-edge npm run bench, ${esc(report.date)}: ${report.highConcurrency} connections, medians</text>`);
  out.push(`<text x="${x1}" y="${top - 12}" font-weight="bold">req/s (longer is better)</text>`);
  out.push(`<text x="${x2}" y="${top - 12}" font-weight="bold">p99 latency, ms (shorter is better)</text>`);
  lastPayload = undefined;
  for (const { row, y: by } of positions) {
    const t = row.throughput!;
    if (row.target.payload !== lastPayload) {
      out.push(`<text x="12" y="${by - 6}" font-weight="bold" fill="#333">${esc(PAYLOADS[row.target.payload])}</text>`);
      lastPayload = row.target.payload;
    }
    const color = colors[row.target.via] ?? "#555";
    const w1 = Math.max(1, (t.rps / maxRps) * panelW);
    const w2 = Math.max(1, (t.p99Ms / maxP99) * panelW);
    out.push(`<text x="${labelW - 8}" y="${by + 13}" text-anchor="end">${esc(row.target.label)}</text>`);
    out.push(`<rect x="${x1}" y="${by}" width="${w1.toFixed(1)}" height="${barH}" fill="${color}"/>`);
    out.push(`<text x="${(x1 + w1 + 4).toFixed(1)}" y="${by + 13}">${fmt(t.rps)}</text>`);
    out.push(`<rect x="${x2}" y="${by}" width="${w2.toFixed(1)}" height="${barH}" fill="${color}" fill-opacity="0.75"/>`);
    out.push(`<text x="${(x2 + w2 + 4).toFixed(1)}" y="${by + 13}">${ms(t.p99Ms)}</text>`);
  }
  out.push(
    `<text x="12" y="${height - 14}" fill="#555">Local workerd on a shared 2-core machine, not Cloudflare's network; see results.md for method, CPU per request and caveats.</text>`,
  );
  out.push("</svg>", "");
  return out.join("\n");
}
