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
  /** The answer's Content-Length, when it gave one: a small answer gets a small read buffer. */
  expectedBytes?: number;
}

/**
 * Reads a body in as few, large chunks as the runtime has ready: a BYOB reader
 * into one reused buffer where the body is a byte stream (every fetch body
 * is), else a default reader (a body made in JavaScript). Fewer reads is what
 * makes passing a body on through JavaScript affordable.
 */
interface ChunkReader {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Hands the buffer of a chunk back once its bytes are gone, for the next read. */
  recycle(chunk: Uint8Array): void;
  cancel(reason?: unknown): Promise<void>;
}

/** Bytes one read may take: a 200 KB search arrives in one or two reads. */
const READ_BUFFER_BYTES = 256 * 1024;

/** The read buffer for an answer: its own length when it said so and fits (plus one, to see the end at once), else the largest. */
function readBufferBytes(expectedBytes: number | undefined): number {
  return expectedBytes !== undefined && Number.isSafeInteger(expectedBytes) && expectedBytes >= 0 && expectedBytes < READ_BUFFER_BYTES ? expectedBytes + 1 : READ_BUFFER_BYTES;
}

function chunkReader(body: ReadableStream<Uint8Array>, expectedBytes?: number): ChunkReader {
  const size = readBufferBytes(expectedBytes);
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    const plain = body.getReader();
    return { read: () => plain.read(), recycle: () => {}, cancel: (reason) => plain.cancel(reason) };
  }
  const reader = byob;
  let buffer: ArrayBuffer | undefined;
  return {
    read: () => reader.read(new Uint8Array(buffer ?? new ArrayBuffer(size))) as Promise<ReadableStreamReadResult<Uint8Array>>,
    recycle: (chunk) => {
      // Keep a full-size buffer only, so a runtime handing back a smaller one cannot shrink every later read.
      buffer = chunk.buffer.byteLength >= size ? (chunk.buffer as ArrayBuffer) : undefined;
    },
    cancel: (reason) => reader.cancel(reason),
  };
}

/** No chunk came within the idle time. */
class AnswerIdleError extends Error {
  override name = "AnswerIdleError";
}

/** The next chunk, or a rejection when none comes within `ms` (the reader is then cancelled). */
async function readWithin(reader: ChunkReader, ms: number): Promise<ReadableStreamReadResult<Uint8Array>> {
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
  const reader = chunkReader(body, at.expectedBytes);
  let first: ReadableStreamReadResult<Uint8Array>;
  try {
    first = await readWithin(reader, at.idleMs);
  } catch (error) {
    logBreak(at, 0, error, "before the first byte; answered 502");
    throw new UpstreamAnswerBrokenError(at.sourceName, error);
  }
  if (first.done) return null;
  return pumpWatched(reader, first.value, at);
}

/**
 * The rest of an answer, from `reader`, written to a native
 * IdentityTransformStream that the runtime sends on: a write completes only
 * once the client has taken the bytes, so nothing is read ahead. ONE watchdog
 * timer per answer (not one per chunk, nor a JavaScript stream in between,
 * each of which measured many times the CPU of the body itself) looks every
 * half `idleMs`: when a read has waited on the upstream for `idleMs`, the
 * stream is errored (the client's connection closes without the final
 * chunk), the upstream cancelled, and the log says why. Time spent waiting on
 * a slow client never counts.
 */
function pumpWatched(reader: ChunkReader, first: Uint8Array, at: AnswerContext): ReadableStream<Uint8Array> {
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  /** When the pending upstream read began; undefined while the client is being written to. */
  let waitingSince: number | undefined;
  let passed = 0;
  let cutOff = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = (): void => {
    timer = setTimeout(() => {
      timer = undefined;
      if (waitingSince === undefined || Date.now() - waitingSince < at.idleMs) return watch();
      cutOff = true;
      const error = new AnswerIdleError(`no data for ${at.idleMs} ms`);
      logBreak(at, passed, error, "mid-stream; client connection closed without the end of the answer");
      writer.abort(new UpstreamAnswerBrokenError(at.sourceName, error)).catch(() => {});
      reader.cancel(error).catch(() => {});
    }, Math.max(1, at.idleMs / 2));
  };
  const pump = async (): Promise<void> => {
    let chunk: Uint8Array = first;
    for (;;) {
      passed += chunk.byteLength;
      try {
        await writer.write(chunk);
      } catch {
        // The client went away (or the watchdog cut the stream off): no more upstream.
        await reader.cancel().catch(() => {});
        return;
      }
      // The client has taken the bytes: the chunk's buffer is free for the next read.
      reader.recycle(chunk);
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        waitingSince = Date.now();
        next = await reader.read();
        waitingSince = undefined;
      } catch (error) {
        if (cutOff) return;
        // The caller gave up (the client disconnected): not the upstream's fault, and nobody to tell.
        if (error instanceof Error && error.name === "AbortError") {
          await writer.abort(error).catch(() => {});
          return;
        }
        logBreak(at, passed, error, "mid-stream; client connection closed without the end of the answer");
        await writer.abort(new UpstreamAnswerBrokenError(at.sourceName, error)).catch(() => {});
        return;
      }
      if (next.done) {
        await writer.close().catch(() => {});
        return;
      }
      chunk = next.value;
    }
  };
  watch();
  void pump().finally(() => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  });
  return readable as ReadableStream<Uint8Array>;
}

/**
 * A source's whole answer as text, for the callers that parse or rewrite it.
 * @throws UpstreamAnswerBrokenError (502) when it ends early, breaks, or falls silent for `idleMs`
 */
export async function readAnswerText(response: Response, at: AnswerContext): Promise<string> {
  if (response.body === null) return "";
  const reader = chunkReader(response.body, at.expectedBytes);
  const decoder = new TextDecoder();
  let text = "";
  let read = 0;
  try {
    for (;;) {
      const next = await readWithin(reader, at.idleMs);
      if (next.done) return text + decoder.decode();
      read += next.value.byteLength;
      text += decoder.decode(next.value, { stream: true });
      reader.recycle(next.value);
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
