/**
 * The repository explains itself: every relative link in README.md and docs/
 * reaches a file (and heading) that exists, every `docs/<page>.md#anchor`
 * named anywhere in the tree (source comments, tests, scripts) exists, and no
 * file points outside the repository, where a user's clone has nothing.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Never scanned: installed packages, CI plumbing, and what builds and runs leave behind. */
const SKIPPED_DIRS = new Set(["node_modules", ".git", ".ci", ".wrangler", "dist", "test-results"]);

/** Tracked files (git), or every file outside the skipped folders when there is no git checkout. */
function repositoryFiles(): string[] {
  try {
    const out = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return out
      .split("\0")
      .filter((f) => f !== "" && !SKIPPED_DIRS.has(f.split("/")[0]!) && existsSync(join(ROOT, f)));
  } catch {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(join(ROOT, dir))) {
        const rel = dir === "" ? name : `${dir}/${name}`;
        if (SKIPPED_DIRS.has(name) || rel === "bench/out") continue;
        if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
        else files.push(rel);
      }
    };
    walk("");
    return files;
  }
}

function textOf(file: string): string | undefined {
  const bytes = readFileSync(join(ROOT, file));
  return bytes.includes(0) ? undefined : bytes.toString("utf8");
}

/** Markdown lines outside fenced code blocks, with their line numbers. */
function proseLines(markdown: string): Array<[number, string]> {
  const lines: Array<[number, string]> = [];
  let fenced = false;
  markdown.split("\n").forEach((line, i) => {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    else if (!fenced) lines.push([i + 1, line]);
  });
  return lines;
}

/** The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces to '-', repeats numbered). */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const counts = new Map<string, number>();
  for (const [, line] of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const text = heading[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
      .replace(/ /g, "-");
    const seen = counts.get(base) ?? 0;
    counts.set(base, seen + 1);
    anchors.add(seen === 0 ? base : `${base}-${seen}`);
  }
  return anchors;
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOfFile(file: string): Set<string> {
  let anchors = anchorCache.get(file);
  if (!anchors) {
    anchors = anchorsOf(readFileSync(join(ROOT, file), "utf8"));
    anchorCache.set(file, anchors);
  }
  return anchors;
}

/** Why a repository-relative target (`docs/<page>.md#<anchor>`) does not resolve, or undefined when it does. */
function brokenTarget(target: string): string | undefined {
  const [path, anchor] = target.split("#", 2) as [string, string | undefined];
  if (path.startsWith("..") || !existsSync(join(ROOT, path))) return `no file ${path}`;
  if (anchor === undefined || anchor === "") return undefined;
  if (!path.endsWith(".md")) return undefined;
  return anchorsOfFile(path).has(decodeURIComponent(anchor)) ? undefined : `no heading #${anchor} in ${path}`;
}

const files = repositoryFiles();
const markdownPages = files.filter((f) => f === "README.md" || (f.startsWith("docs/") && f.endsWith(".md")));

describe("links in README.md and docs/", () => {
  it("finds the README and the docs pages", () => {
    expect(markdownPages).toContain("README.md");
    expect(markdownPages).toContain("docs/contract.md");
  });

  it("resolves every relative link to an existing file and heading", () => {
    const broken: string[] = [];
    for (const page of markdownPages) {
      for (const [n, line] of proseLines(readFileSync(join(ROOT, page), "utf8"))) {
        for (const match of line.matchAll(/\]\(([^)\s]+)\)/g)) {
          const href = match[1]!;
          if (/^[a-z][a-z+.-]*:/i.test(href)) continue; // https:, mailto:
          const target = href.startsWith("#") ? `${page}${href}` : relative(ROOT, resolve(ROOT, dirname(page), href.split("#")[0]!)) + (href.includes("#") ? `#${href.split("#")[1]}` : "");
          const why = brokenTarget(target);
          if (why) broken.push(`${page}:${n}: ${href} (${why})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});

describe("references to docs pages anywhere in the repository", () => {
  it("name pages and headings that exist", () => {
    const broken: string[] = [];
    for (const file of files) {
      if (file.endsWith(".md")) continue; // markdown links are checked above, relative to their page
      const text = textOf(file);
      if (text === undefined) continue;
      text.split("\n").forEach((line, i) => {
        for (const match of line.matchAll(/(?<![\w./-])(?:\.\.\/)*(docs\/[a-z0-9-]+\.md(?:#[a-z0-9_-]+)?)/g)) {
          const why = brokenTarget(match[1]!);
          if (why) broken.push(`${file}:${i + 1}: ${match[1]} (${why})`);
        }
      });
    }
    expect(broken).toEqual([]);
  });
});

describe("nothing points outside the repository", () => {
  // Built from parts so this file does not match itself.
  const outside = [["..", "shared"].join("/"), ["", "work", "shared"].join("/")];

  it("has no reference to the shared notes folder in any tracked file", () => {
    const found: string[] = [];
    for (const file of files) {
      const text = textOf(file);
      if (text === undefined) continue;
      text.split("\n").forEach((line, i) => {
        if (outside.some((needle) => line.includes(needle))) found.push(`${file}:${i + 1}: ${line.trim().slice(0, 120)}`);
      });
    }
    expect(found).toEqual([]);
  });
});
