import { describe, expect, it } from "vitest";
import { findSecret } from "../../../src/auth/constant-time.ts";

describe("finding a presented secret among the known ones", () => {
  const known = ["key-alpha-0123456789", "key-beta-0123456789", "ключ-γ-€"];

  it("gives the index of the secret that matches exactly", () => {
    expect(findSecret("key-alpha-0123456789", known)).toBe(0);
    expect(findSecret("key-beta-0123456789", known)).toBe(1);
    expect(findSecret("ключ-γ-€", known)).toBe(2);
  });

  it("refuses a prefix, an extension, one changed character, a different case and the empty string", () => {
    for (const presented of ["key-alpha-012345678", "key-alpha-01234567890", "key-alpha-0123456788", "KEY-alpha-0123456789", ""]) {
      expect(findSecret(presented, known)).toBe(-1);
    }
  });

  it("keeps the first of two equal secrets, and finds nothing among none", () => {
    expect(findSecret("same", ["other", "same", "same"])).toBe(1);
    expect(findSecret("same", [])).toBe(-1);
  });

  it("compares secrets longer than its fixed walk in full", () => {
    const long = "x".repeat(300) + "tail";
    expect(findSecret(long, [long])).toBe(0);
    expect(findSecret("x".repeat(300) + "tall", [long])).toBe(-1);
  });
});

describe("a presented value longer than every secret", () => {
  it("matches nothing, however long", () => {
    expect(findSecret("k".repeat(64 * 1024), ["k".repeat(20)])).toBe(-1);
    expect(findSecret("x".repeat(301), ["x".repeat(300)])).toBe(-1);
  });
});
