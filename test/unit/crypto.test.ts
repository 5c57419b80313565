import { describe, expect, it } from "vitest";
import { fromBase64url, toBase64url } from "../../src/crypto.ts";

describe("strict base64url decoding of signatures and cursors", () => {
  it("decodes the canonical unpadded encoding", () => {
    expect(fromBase64url("AQID_-8")).toEqual(new Uint8Array([1, 2, 3, 255, 239]));
    expect(toBase64url(new Uint8Array([1, 2, 3, 255, 239]))).toBe("AQID_-8");
    expect(fromBase64url("")).toEqual(new Uint8Array([]));
  });

  it.each([
    ["non-zero unused bits in the last character", "AQID_-9"],
    ["padding", "AQI="],
    ["standard base64 characters", "AQID/+8"],
    ["whitespace", "AQ ID"],
    ["a length that no bytes encode to", "AQIDB"],
  ])("refuses %s", (_, text) => {
    expect(fromBase64url(text)).toBeUndefined();
  });
});
