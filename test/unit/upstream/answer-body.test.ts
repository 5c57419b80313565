import { afterEach, describe, expect, it, vi } from "vitest";
import { passOnBody, passOnFile, readAnswerText } from "../../../src/upstream/answer-body.ts";

const AT = { requestId: "req-1", sourceName: "ehr", idleMs: 200 };
const bytes = (text: string) => new TextEncoder().encode(text);

/** A body that sends `chunks`, then ends, breaks, or falls silent. */
function body(chunks: string[], then: "end" | "break" | "silence"): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(bytes(chunks[i++]!));
      else if (then === "end") controller.close();
      else if (then === "break") controller.error(new TypeError("Network connection lost."));
      else return new Promise(() => {});
    },
  });
}

afterEach(() => vi.restoreAllMocks());

describe("an answer passed on to the client is complete, or a 502, or a stream that errors", () => {
  it("a whole answer passes unchanged", async () => {
    const passed = await passOnBody(body(["a", "b", "c"], "end"), AT);
    expect(await new Response(passed).text()).toBe("abc");
  });

  it("a native byte stream over the read buffer (3 MB, read in reused 256 KB buffers) passes byte for byte, and so does the text the edge reads", async () => {
    const original = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 31 + (i >> 12)) & 0xff);
    const passed = await passOnBody(new Response(original).body, AT);
    expect(new Uint8Array(await new Response(passed).arrayBuffer())).toEqual(original);
    const text = "x".repeat(700 * 1024) + "é".repeat(1000);
    expect(await readAnswerText(new Response(text), AT)).toBe(text);
  });

  it("a small answer that came whole in one read, as its Content-Length said, is handed on as its bytes (no stream, pump or timer)", async () => {
    const text = '{"resourceType":"Patient","id":"p1"}';
    const passed = await passOnBody(new Response(text).body, { ...AT, expectedBytes: text.length });
    expect(passed).toBeInstanceOf(Uint8Array);
    expect(new TextDecoder().decode(passed as Uint8Array)).toBe(text);
  });

  it("an answer with more bytes than its Content-Length: 502 when the edge sees it before answering, an erroring stream (and a log line) after", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    // In the first read, or right after a first read that was exactly the length.
    await expect(passOnBody(body(["abcd"], "end"), { ...AT, expectedBytes: 3 })).rejects.toMatchObject({ status: 502, code: "upstream-answer-broken" });
    await expect(passOnBody(body(["abc", "d"], "end"), { ...AT, expectedBytes: 3 })).rejects.toMatchObject({ status: 502, code: "upstream-answer-broken" });
    // Past the length in a later read: the headers are out, so the stream errors.
    log.mockClear();
    const later = await passOnBody(body(["ab", "cd"], "end"), { ...AT, expectedBytes: 3 });
    await expect(new Response(later).text()).rejects.toThrow();
    expect(JSON.parse(String(log.mock.calls[0]?.[0]))).toMatchObject({ error: "AnswerLengthError", bytes: 2 });
  });

  it("Content-Length 0 with an empty body is no body; a promised length with an empty body is 502", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const empty = () => {
      const { readable, writable } = new IdentityTransformStream();
      void writable.close();
      return readable;
    };
    expect(await passOnBody(empty(), { ...AT, expectedBytes: 0 })).toBeNull();
    await expect(passOnBody(empty(), { ...AT, expectedBytes: 5 })).rejects.toMatchObject({ status: 502, code: "upstream-answer-broken" });
  });

  it("an empty answer is no body", async () => {
    expect(await passOnBody(body([], "end"), AT)).toBeNull();
  });

  it("a break before the first byte is 502 upstream-answer-broken, before any header goes out", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    await expect(passOnBody(body([], "break"), AT)).rejects.toMatchObject({ status: 502, code: "upstream-answer-broken" });
  });

  it("a break after the first chunk errors the stream and logs why, with the request id and no content", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const passed = await passOnBody(body(["secret-ish content"], "break"), AT);
    await expect(new Response(passed).text()).rejects.toThrow();
    const line = JSON.parse(log.mock.calls[0]![0] as string) as Record<string, unknown>;
    expect(line).toMatchObject({ requestId: "req-1", source: "ehr", bytes: 18 });
    expect(String(line.msg)).toContain("mid-stream");
    expect(JSON.stringify(line)).not.toContain("secret-ish");
  });

  it("an upstream that falls silent for longer than the idle time counts as broken", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const passed = await passOnBody(body(["a"], "silence"), AT);
    await expect(new Response(passed).text()).rejects.toThrow();
  });
});

describe("an answer the edge reads itself is whole or a 502", () => {
  it("reads the whole text", async () => {
    expect(await readAnswerText(new Response(body(["{", "}"], "end")), AT)).toBe("{}");
  });

  it("a body that ends short of its Content-Length is 502 upstream-answer-broken, never a shorter text", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    await expect(readAnswerText(new Response(body(['{"a"'], "end")), { ...AT, expectedBytes: 10 })).rejects.toMatchObject({ status: 502, code: "upstream-answer-broken" });
  });

  it("a broken body is 502 upstream-answer-broken", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    await expect(readAnswerText(new Response(body(["{"], "break")), AT)).rejects.toMatchObject({ status: 502, code: "upstream-answer-broken" });
  });
});

describe("a Bulk Data file is read in whole megabytes, cut off when one does not fill in time", () => {
  it("a native byte stream of 2.5 MB (not a whole number of reads) passes byte for byte, its last half megabyte included", async () => {
    const original = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => (i * 7 + (i >> 10)) & 0xff);
    const passed = await passOnFile(new Response(original).body, AT);
    expect(new Uint8Array(await new Response(passed).arrayBuffer())).toEqual(original);
  });

  it("a JavaScript byte stream that closes part-way through a read: its last bytes still pass", async () => {
    const original = new Uint8Array(1.5 * 1024 * 1024).map((_, i) => i & 0xff);
    let sent = false;
    const stream = new ReadableStream({
      type: "bytes",
      pull(controller) {
        if (sent) return controller.close();
        sent = true;
        controller.enqueue(original.slice());
      },
    });
    const passed = await passOnFile(stream as ReadableStream<Uint8Array>, AT);
    expect(new Uint8Array(await new Response(passed).arrayBuffer())).toEqual(original);
  });

  it("a file smaller than its read (Content-Length known) passes whole, and an empty one is no body", async () => {
    const small = bytes('{"resourceType":"Patient"}\n');
    expect(await new Response(await passOnFile(new Response(small).body, { ...AT, expectedBytes: small.byteLength })).text()).toBe('{"resourceType":"Patient"}\n');
    expect(await passOnFile(new Response(new Uint8Array(0)).body, { ...AT, expectedBytes: 0 })).toBeNull();
  });

  it("a file whose next megabyte does not fill within the idle time: the client has the first read's bytes, then the stream errors, and the log says how far it got", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const { readable, writable } = new IdentityTransformStream();
    void writable.getWriter().write(new Uint8Array(1.5 * 1024 * 1024));
    const started = Date.now();
    const passed = await passOnFile(readable, AT);
    const reader = new Response(passed).body!.getReader();
    let received = 0;
    const ending = await (async () => {
      try {
        for (;;) {
          const next = await reader.read();
          if (next.done) return "ended";
          received += next.value.byteLength;
        }
      } catch {
        return "errored";
      }
    })();
    expect(ending).toBe("errored");
    // The first read took the megabyte that was ready; the half after it never filled the next read.
    expect(received).toBe(1024 * 1024);
    expect(Date.now() - started).toBeGreaterThanOrEqual(AT.idleMs);
    const line = JSON.parse(log.mock.calls[0]![0] as string) as Record<string, unknown>;
    expect(line).toMatchObject({ requestId: "req-1", source: "ehr", bytes: 1024 * 1024 });
    expect(String(line.msg)).toContain("mid-stream");
  });

  it("a file's first chunk goes out as soon as it comes (headers never wait for a megabyte); nothing at all within the idle time is 502 before any header", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { readable, writable } = new IdentityTransformStream();
    void writable.getWriter().write(bytes("one line\n"));
    const passed = await passOnFile(readable, AT);
    const reader = new Response(passed).body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("one line\n");
    await expect(reader.read()).rejects.toThrow();
    const silent = new IdentityTransformStream();
    await expect(passOnFile(silent.readable, AT)).rejects.toMatchObject({ status: 502, code: "upstream-answer-broken" });
  });

  it("a reader that hands over the last bytes together with done (as the Streams spec allows): they pass, then the end", async () => {
    const enc = new TextEncoder();
    const fill = (view: Uint8Array, text: string) => {
      view.set(enc.encode(text));
      return view.subarray(0, text.length);
    };
    const reader = {
      read: async (view: Uint8Array) => ({ done: false, value: fill(view, "abc") }),
      readAtLeast: async (_min: number, view: Uint8Array) => ({ done: true, value: fill(view, "de") }),
      cancel: async () => {},
    };
    const stream = { getReader: () => reader } as unknown as ReadableStream<Uint8Array>;
    expect(await new Response(await passOnFile(stream, AT)).text()).toBe("abcde");
  });

  it("a body shorter than its known length errors instead of ending, and the log says how far it got (the client gets that length as Content-Length: test/integration/bulk-export.test.ts)", async () => {
    expect(await new Response(await passOnFile(new Response("0123456789").body, { ...AT, expectedBytes: 10 })).text()).toBe("0123456789");
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const short = await passOnFile(body(["01234"], "end"), { ...AT, expectedBytes: 10 });
    await expect(new Response(short).text()).rejects.toThrow();
    expect(JSON.parse(String(log.mock.calls[0]?.[0]))).toMatchObject({ error: "AnswerLengthError", bytes: 5 });
  });

  it("a slow client never counts against the idle time: pauses longer than it between the client's reads, and the whole file still passes", async () => {
    const original = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 13) & 0xff);
    const passed = await passOnFile(new Response(original).body, { ...AT, expectedBytes: original.byteLength });
    const reader = new Response(passed).body!.getReader();
    const received: Uint8Array[] = [];
    let bytes = 0;
    let pauses = 0;
    for (;;) {
      // A pause longer than the idle time before each megabyte the client takes.
      if (bytes >= pauses * 1024 * 1024) {
        pauses++;
        await new Promise((resolve) => setTimeout(resolve, AT.idleMs + 100));
      }
      const next = await reader.read();
      if (next.done) break;
      received.push(next.value.slice());
      bytes += next.value.byteLength;
    }
    expect(pauses).toBeGreaterThanOrEqual(3);
    expect(new Uint8Array(await new Blob(received).arrayBuffer())).toEqual(original);
  });
});
