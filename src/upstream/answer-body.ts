import { UpstreamAnswerBrokenError } from "../errors.ts";

/** Which answer is read, for the log and the error, and how long a silence may last. */
export interface AnswerContext {
  requestId: string;
  sourceName: string;
  /**
   * The longest wait for one read, in ms (the source's `timeout`): the next
   * chunk of an answer, the next megabyte of a Bulk Data file. The runtime
   * does not always notice an upstream that closed its connection before the
   * `Content-Length` it promised; without this the read would wait forever.
   */
  idleMs: number;
  /**
   * The length of the body as the edge reads it: the answer's Content-Length
   * when it gave one and no Content-Encoding (the runtime decodes an encoded
   * body). A small answer gets a small read buffer, and the client gets the
   * length too.
   */
  expectedBytes?: number;
}

/**
 * Reads a body in few, large chunks: a BYOB reader into one reused buffer
 * where the body is a byte stream (every fetch body is), else a default
 * reader, chunk by chunk (a body made in JavaScript). Fewer reads is what
 * makes passing a body on through JavaScript affordable.
 */
interface ChunkReader {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Hands the buffer of a chunk back once its bytes are gone, for the next read. */
  recycle(chunk: Uint8Array): void;
  cancel(reason?: unknown): Promise<void>;
}

/**
 * How an answer is read: the largest read, and whether reads after the first
 * wait until they have that much (or the end). Each read costs the runtime a
 * few KB that wait for garbage collection, so a body read in many small
 * pieces costs memory in proportion to its size; few, full reads keep that
 * small. The first read always takes what is ready, so headers go out as
 * soon as the body starts.
 */
interface ReadShape {
  maxBytes: number;
  fill: boolean;
}

/** FHIR answers: a 200 KB search arrives in one or two reads, each taking what the runtime has ready. */
const ANSWER_READS: ReadShape = { maxBytes: 256 * 1024, fill: false };

/**
 * Bulk Data files, which run to gigabytes: each read after the first waits
 * for 1 MB (or the file's end), so a 1 GB file is about a thousand reads. Measured in workerd,
 * reads that take what is ready were ~13,000 per GB and held ~80 MB awaiting
 * collection; full 1 MB reads hold under 10 MB (docs/bulk-data.md#memory).
 */
const FILE_READS: ReadShape = { maxBytes: 1024 * 1024, fill: true };

/** The read buffer for an answer: its own length when it said so and fits (plus one, to see the end at once), else the largest. */
function readBufferBytes(expectedBytes: number | undefined, maxBytes: number): number {
  return expectedBytes !== undefined && Number.isSafeInteger(expectedBytes) && expectedBytes >= 0 && expectedBytes < maxBytes ? expectedBytes + 1 : maxBytes;
}

/** The body's length did not match its Content-Length. */
class AnswerLengthError extends Error {
  override name = "AnswerLengthError";
}

/**
 * The reader for a body: BYOB where it can, and checked against the length
 * the answer promised, so every caller (passed on or read whole) finds a
 * body that runs short of its Content-Length, or past it, as an
 * {@link AnswerLengthError} from `read()` instead of a short or long answer.
 */
function chunkReader(body: ReadableStream<Uint8Array>, shape: ReadShape, expectedBytes?: number): ChunkReader {
  const size = readBufferBytes(expectedBytes, shape.maxBytes);
  let buffer: ArrayBuffer | undefined;
  let first = true;
  let rawRead: () => Promise<ReadableStreamReadResult<Uint8Array> | { done: true; value: Uint8Array }>;
  let reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>;
  try {
    const byob = body.getReader({ mode: "byob" });
    reader = byob;
    rawRead = () => {
      const view = new Uint8Array(buffer ?? new ArrayBuffer(size));
      const fill = shape.fill && !first;
      first = false;
      // readAtLeast is the runtime's name for the standard read(view, { min }).
      return fill ? byob.readAtLeast(size, view) : byob.read(view);
    };
  } catch {
    const plain = body.getReader();
    reader = plain;
    rawRead = () => plain.read();
  }
  let ended = false;
  let total = 0;
  return {
    read: async () => {
      if (ended) return { done: true, value: undefined };
      const next = await rawRead();
      // The Streams spec lets a read waiting to fill its buffer end with the body's last bytes and
      // `done` together (workerd hands them over first, then done): the bytes come first either way.
      const bytes = next.value !== undefined && next.value.byteLength > 0 ? next.value : undefined;
      if (next.done) ended = true;
      if (bytes === undefined) {
        if (!next.done) return next;
        if (expectedBytes !== undefined && total < expectedBytes) throw new AnswerLengthError(`ended after ${total} of its ${expectedBytes} bytes`);
        return { done: true, value: undefined };
      }
      total += bytes.byteLength;
      if (expectedBytes !== undefined && total > expectedBytes) throw new AnswerLengthError(`more bytes than its Content-Length ${expectedBytes}`);
      return { done: false, value: bytes };
    },
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
  constructor(ms: number) {
    super(`no data for ${ms} ms`);
  }
}

/** The next chunk, or a rejection when none comes within `ms` (the reader is then cancelled). */
async function readWithin(reader: ChunkReader, ms: number): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AnswerIdleError(ms)), ms);
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

/** A body to send on: the answer's bytes when they came whole in one read, else a stream; null when there was none. */
export type PassedBody = ReadableStream<Uint8Array> | Uint8Array | null;

/**
 * A source's answer body, made safe to pass on: the first chunk is read
 * before the edge answers, so an answer that ends early or breaks before any
 * byte (a 431 and a closed connection) becomes {@link UpstreamAnswerBrokenError},
 * a 502 OperationOutcome, instead of headers followed by a chunked body that
 * never ends. A break (or a silence longer than `idleMs`) later, once headers
 * are out, errors the stream, so the client's connection closes without the
 * final chunk and it cannot take a truncated answer for a whole one; the log
 * says why.
 * @returns the body to send on: its bytes when they came whole in the first
 *   read (a small answer with its Content-Length), else a stream; null when
 *   the answer had none
 * @throws UpstreamAnswerBrokenError when the body broke before its first byte
 */
export async function passOnBody(body: ReadableStream<Uint8Array> | null, at: AnswerContext, shape: ReadShape = ANSWER_READS): Promise<PassedBody> {
  if (body === null) return null;
  const reader = chunkReader(body, shape, at.expectedBytes);
  try {
    const first = await readWithin(reader, at.idleMs);
    if (first.done) return null;
    if (first.value.byteLength !== at.expectedBytes) return pumpWatched(reader, first.value, at);
    // The whole answer came in the first read: the end is a read away (the reader throws on a byte
    // past the length), and the bytes go on as they are, with no stream, pump or timer.
    await readWithin(reader, at.idleMs);
    return first.value;
  } catch (error) {
    // readWithin has let go of the upstream.
    logBreak(at, 0, error, "before the edge answered; answered 502");
    throw new UpstreamAnswerBrokenError(at.sourceName, error);
  }
}

/**
 * A Bulk Data file passed on as {@link passOnBody} passes an answer (the
 * first chunk before headers, the same cut-off, at most one read ahead of
 * the client), then read in full 1 MB pieces: a read that has not filled
 * 1 MB (or reached the file's end) within `idleMs` cuts the download off, so
 * the upstream must keep up at least 1 MB per `timeout` (35 KB/s at the
 * default 30 s).
 * @see docs/bulk-data.md
 */
export const passOnFile = (body: ReadableStream<Uint8Array> | null, at: AnswerContext): Promise<PassedBody> => passOnBody(body, at, FILE_READS);

/**
 * The rest of an answer, from `reader`, written to a native stream that the
 * runtime sends on (a FixedLengthStream when the length is known, so the
 * client gets its Content-Length and a short body errors; else an
 * IdentityTransformStream): a write completes only once the client has
 * taken the bytes, so the edge is at most one read ahead. ONE watchdog
 * timer per answer (not one per chunk, nor a JavaScript stream in between,
 * each of which measured many times the CPU of the body itself) looks every
 * half `idleMs`: when a read has waited on the upstream for `idleMs` (so the
 * cut comes between 1 and 1.5 times `idleMs`), the stream is errored (the
 * client's connection closes without the final chunk), the upstream
 * cancelled, and the log says why. Time spent waiting on a slow client never
 * counts.
 */
function pumpWatched(reader: ChunkReader, first: Uint8Array, at: AnswerContext): ReadableStream<Uint8Array> {
  const { readable, writable } = at.expectedBytes !== undefined ? new FixedLengthStream(at.expectedBytes) : new IdentityTransformStream();
  const writer = writable.getWriter();
  /** When the pending upstream read began; undefined while the client is being written to. */
  let waitingSince: number | undefined;
  let passed = 0;
  let cutOff = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Errors the client's stream (no final chunk) and says why in the log. */
  const breakMidStream = (error: unknown): Promise<void> => {
    logBreak(at, passed, error, "mid-stream; client connection closed without the end of the answer");
    return writer.abort(new UpstreamAnswerBrokenError(at.sourceName, error)).catch(() => {});
  };
  const watch = (): void => {
    timer = setTimeout(() => {
      timer = undefined;
      if (waitingSince === undefined || Date.now() - waitingSince < at.idleMs) return watch();
      cutOff = true;
      const error = new AnswerIdleError(at.idleMs);
      void breakMidStream(error);
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
        await breakMidStream(error);
        await reader.cancel().catch(() => {});
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
  const reader = chunkReader(response.body, ANSWER_READS, at.expectedBytes);
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
