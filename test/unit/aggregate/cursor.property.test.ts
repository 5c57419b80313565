import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cursorKey, readCursor, signCursor, type CursorState } from "../../../src/aggregate/cursor.ts";
import { fromBase64url, toBase64url } from "../../../src/crypto.ts";
import { fuzzParameters, fuzzTimeout } from "../../fixtures/fuzz.ts";

const NOW = Date.parse("2026-01-01T00:00:00Z");
const SECRET = "a-long-random-secret-for-property-tests-0123456789";
const text = fc.string({ unit: "binary", maxLength: 24 });
const count = fc.nat({ max: 1_000_000 });

const state: fc.Arbitrary<CursorState> = fc.record({
  resourceType: text,
  client: text,
  count: fc.option(count, { nil: null }),
  sort: fc.option(text, { nil: null }),
  positions: fc.array(
    fc.record({ source: text, at: fc.option(text, { nil: null }), skip: count, total: count }, { requiredKeys: ["source", "at", "skip"] }),
    { minLength: 1, maxLength: 4 },
  ),
});

/** Characters a mutation writes: the base64url alphabet, the separator, padding, other ASCII and non-ASCII. */
const replacement = fc.oneof(
  fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %\u0000\u00e9\u2024\uff0e"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
);

/** One change to a token: a character replaced by a different one, inserted, or removed. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), with: replacement }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), with: replacement }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), with: fc.constant("") }),
);

function mutate(token: string, m: { kind: "replace" | "insert" | "delete"; at: number; with: string }): string {
  const i = m.at % (token.length + (m.kind === "insert" ? 1 : 0));
  switch (m.kind) {
    case "replace":
      return token.slice(0, i) + (token[i] === m.with ? (m.with === "A" ? "B" : "A") : m.with) + token.slice(i + 1);
    case "insert":
      return token.slice(0, i) + m.with + token.slice(i);
    case "delete":
      return token.slice(0, i) + token.slice(i + 1);
  }
}

describe("aggregate cursors: a cursor changed in any byte is refused", () => {
  it(
    "a signed cursor reads back as the state it was signed with",
    async () => {
      const key = await cursorKey(SECRET);
      await fc.assert(
        fc.asyncProperty(state, async (s) => {
          expect(await readCursor(await signCursor(s, key, NOW), key, NOW + 1000)).toEqual({ ok: true, value: s });
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(400),
  );

  it(
    "a signed cursor with one character replaced, inserted or removed is refused as invalid",
    async () => {
      const key = await cursorKey(SECRET);
      await fc.assert(
        fc.asyncProperty(state, mutation, async (s, m) => {
          const token = await signCursor(s, key, NOW);
          const changed = mutate(token, m);
          fc.pre(changed !== token);
          expect(await readCursor(changed, key, NOW + 1000)).toEqual({ ok: false, error: "invalid" });
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(400),
  );

  it(
    "the last character of the signature changed within its unused bits is refused",
    async () => {
      const key = await cursorKey(SECRET);
      await fc.assert(
        fc.asyncProperty(state, fc.integer({ min: 1, max: 3 }), async (s, flip) => {
          const token = await signCursor(s, key, NOW);
          // 32 bytes are 43 characters; the last carries 4 bits of the MAC and 2 unused ones.
          const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
          const last = alphabet.indexOf(token.at(-1)!);
          const changed = token.slice(0, -1) + alphabet[last ^ flip];
          expect(await readCursor(changed, key, NOW + 1000)).toEqual({ ok: false, error: "invalid" });
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(400),
  );

  it(
    "any text, or a cursor cut or spliced with other text, gives a state or a typed refusal, never a throw",
    async () => {
      const key = await cursorKey(SECRET);
      const token = await signCursor({ resourceType: "Patient", client: "app", count: 10, sort: null, positions: [{ source: "a", at: "/Patient?_offset=10", skip: 0 }] }, key, NOW);
      const input = fc.oneof(
        fc.string({ unit: "binary", maxLength: 80 }),
        fc.tuple(fc.nat({ max: token.length }), fc.string({ maxLength: 20 }), fc.nat({ max: token.length })).map(([a, mid, b]) => token.slice(0, a) + mid + token.slice(b)),
      );
      await fc.assert(
        fc.asyncProperty(input, async (candidate) => {
          const result = await readCursor(candidate, key, NOW + 1000);
          if (result.ok) expect(candidate).toBe(token);
          else expect(["invalid", "expired"]).toContain(result.error);
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(300),
  );
});

describe("strict base64url: only the canonical encoding of some bytes decodes", () => {
  it(
    "bytes round-trip, and any text that decodes is the encoding of what it decodes to",
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 40 }), fc.string({ unit: "binary-ascii", maxLength: 12 }), (bytes, other) => {
          expect(fromBase64url(toBase64url(bytes))).toEqual(bytes);
          const decoded = fromBase64url(other);
          if (decoded !== undefined) expect(toBase64url(decoded)).toBe(other);
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(100),
  );
});
