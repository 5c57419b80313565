import { UpstreamAnswerBrokenError } from "../errors.ts";

/** Which answer is read, for the log and the error, and how long a silence may last. */
export interface AnswerContext {
  requestId: string;
  sourceName: string;
  /**
   * The longest wait for the next chunk, in ms (the source's `timeout`). The
   * runtime does not always notice an upstream that closed its connection
   * before the `Content-Length` it promised; without this the read would
   * wait forever.
   */
  idleMs: number;
}

/** No chunk came within the idle time. */
class AnswerIdleError extends Error {
  override name = "AnswerIdleError";
}

/** The next chunk, or a rejection when none comes within `ms` (the reader is then cancelled). */
async function readWithin(reader: ReadableStreamDefaultReader<Uint8Array>, ms: number): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AnswerIdleError(`no data for ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([reader.read(), idle]);
  } catch (error) {
    reader.cancel().catch(() => {});
    throw error;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/**
 * A source's answer body, made safe to pass on: the first chunk is read
 * before the edge answers, so an answer that ends early or breaks before any
 * byte (a 431 and a closed connection) becomes {@link UpstreamAnswerBrokenError},
 * a 502 OperationOutcome, instead of headers followed by a chunked body that
 * never ends. A break (or a silence longer than `idleMs`) later, once headers
 * are out, errors the stream, so the client's connection closes without the
 * final chunk and it cannot take a truncated answer for a whole one; the log
 * says why.
 * @returns the body to send on, or null when the answer had none
 * @throws UpstreamAnswerBrokenError when the body broke before its first byte
 */
export async function passOnBody(body: ReadableStream<Uint8Array> | null, at: AnswerContext): Promise<ReadableStream<Uint8Array> | null> {
  if (body === null) return null;
  const reader = body.getReader();
  let first: ReadableStreamReadResult<Uint8Array>;
  try {
    first = await readWithin(reader, at.idleMs);
  } catch (error) {
    logBreak(at, 0, error, "before the first byte; answered 502");
    throw new UpstreamAnswerBrokenError(at.sourceName, error);
  }
  if (first.done) return null;
  let passed = first.value.byteLength;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(first.value);
    },
    async pull(controller) {
      try {
        const next = await readWithin(reader, at.idleMs);
        if (next.done) controller.close();
        else {
          passed += next.value.byteLength;
          controller.enqueue(next.value);
        }
      } catch (error) {
        logBreak(at, passed, error, "mid-stream; client connection closed without the end of the answer");
        controller.error(new UpstreamAnswerBrokenError(at.sourceName, error));
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Bytes read from upstream at a time by {@link cutOffWhenSilent}, into the one buffer it reuses. */
const LONG_BODY_CHUNK = 1024 * 1024;

/**
 * A long body (a Bulk Data file) passed on with the same cut-off as
 * {@link passOnBody}, built for size. Chunks that cross into JavaScript as
 * new buffers pile up as garbage awaiting collection (measured: a 48 MB file
 * raised the Worker's memory by 90 MB, with or without a promise per chunk),
 * so here the upstream is read with a BYOB reader into ONE buffer, reused for
 * every chunk, and written to a native IdentityTransformStream, whose write
 * completes only once the client has taken the bytes (backpressure: nothing
 * read ahead). ONE watchdog timer per body looks every half `idleMs`: when a
 * read has waited on the upstream for `idleMs`, the stream is errored (the
 * client's connection closes without the final chunk), the upstream cancelled,
 * and the log says why. Time spent waiting on a slow client never counts.
 * What remains is the runtime's cost per read (about 5 KB each, awaiting
 * collection), hence the large buffer: fewer, fuller reads. Measured under
 * wrangler: 48 MB adds 1-6 MB like 1 MB does, but 768 MB adds 22 MB, where
 * the runtime's own pipe stays flat (docs/bulk-data.md).
 * @param now the clock (workerd's advances across I/O, which each chunk is)
 * @see docs/bulk-data.md
 */
export function cutOffWhenSilent(body: ReadableStream<Uint8Array>, at: AnswerContext, now: () => number = Date.now): ReadableStream<Uint8Array> {
  const { readable, writable } = new IdentityTransformStream();
  // A fetch body is a byte stream; a body made in JavaScript (a test's stand-in) may not be,
  // and is read chunk by chunk as it comes.
  let byob: ReadableStreamBYOBReader | undefined;
  let plain: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    plain = body.getReader();
  }
  const reader = { cancel: (reason?: unknown) => (byob ?? plain)!.cancel(reason) };
  let buffer = new ArrayBuffer(byob ? LONG_BODY_CHUNK : 0);
  const read = (): Promise<ReadableStreamReadResult<Uint8Array>> => (byob ? byob.read(new Uint8Array(buffer)) : plain!.read());
  const writer = writable.getWriter();
  /** When the pending upstream read began; undefined while the client is being written to. */
  let waitingSince: number | undefined;
  let passed = 0;
  let cutOff = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = (): void => {
    timer = setTimeout(() => {
      timer = undefined;
      if (waitingSince === undefined || now() - waitingSince < at.idleMs) return watch();
      cutOff = true;
      const error = new AnswerIdleError(`no data for ${at.idleMs} ms`);
      logBreak(at, passed, error, "mid-stream; client connection closed without the end of the answer");
      writer.abort(new UpstreamAnswerBrokenError(at.sourceName, error)).catch(() => {});
      reader.cancel(error).catch(() => {});
    }, Math.max(1, at.idleMs / 2));
  };
  const pump = async (): Promise<void> => {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        waitingSince = now();
        next = await read();
        waitingSince = undefined;
      } catch (error) {
        if (cutOff) return;
        logBreak(at, passed, error, "mid-stream; client connection closed without the end of the answer");
        await writer.abort(new UpstreamAnswerBrokenError(at.sourceName, error)).catch(() => {});
        return;
      }
      if (next.done) {
        await writer.close().catch(() => {});
        return;
      }
      passed += next.value.byteLength;
      try {
        await writer.write(next.value);
      } catch {
        // The client went away (or the watchdog cut the stream off): no more upstream.
        await reader.cancel().catch(() => {});
        return;
      }
      // The read took the buffer over; the view it gave back holds it, free again now the client has the bytes.
      if (byob) buffer = next.value.buffer as ArrayBuffer;
    }
  };
  watch();
  void pump().finally(() => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  });
  return readable;
}

/**
 * A source's whole answer as text, for the callers that parse or rewrite it.
 * @throws UpstreamAnswerBrokenError (502) when it ends early, breaks, or falls silent for `idleMs`
 */
export async function readAnswerText(response: Response, at: AnswerContext): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let read = 0;
  try {
    for (;;) {
      const next = await readWithin(reader, at.idleMs);
      if (next.done) return text + decoder.decode();
      read += next.value.byteLength;
      text += decoder.decode(next.value, { stream: true });
    }
  } catch (error) {
    logBreak(at, read, error, "while the edge read it; answered 502");
    throw new UpstreamAnswerBrokenError(at.sourceName, error);
  }
}

/** One log line per broken answer: where it broke, never its content. */
function logBreak(at: AnswerContext, bytes: number, error: unknown, where: string): void {
  console.error(
    JSON.stringify({
      msg: `upstream answer broke ${where}`,
      requestId: at.requestId,
      source: at.sourceName,
      bytes,
      // The error's name only: a runtime message could quote a URL.
      error: error instanceof Error ? error.name : typeof error,
    }),
  );
}
