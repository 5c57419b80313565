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
