import { describe, expect, it } from "vitest";
import { mapLimit, MAX_OPEN_CONNECTIONS } from "../../../src/upstream/limit.ts";

describe("at most six upstream connections at once", () => {
  it("never runs more than the limit, and keeps the order of the items", async () => {
    let running = 0;
    let peak = 0;
    const items = Array.from({ length: 20 }, (_, i) => i);
    const results = await mapLimit(items, MAX_OPEN_CONNECTIONS, async (i) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, (i * 7) % 5));
      running--;
      return i * 2;
    });
    expect(MAX_OPEN_CONNECTIONS).toBe(6);
    expect(peak).toBe(6);
    expect(results).toEqual(items.map((i) => i * 2));
  });

  it("handles no items", async () => {
    expect(await mapLimit([], 6, async () => 1)).toEqual([]);
  });
});
