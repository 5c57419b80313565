import { UpstreamAnswerBrokenError } from "../errors.ts";

/** What the log says when a source's answer breaks after the edge began passing it on. */
export interface BrokenAnswerLog {
  requestId: string;
  sourceName: string;
}

/**
 * A source's answer body, made safe to pass on: the first chunk is read
 * before the edge answers, so an answer that ends early or breaks before any
 * byte (a 431 and a closed connection) becomes {@link UpstreamAnswerBrokenError},
 * a 502 OperationOutcome, instead of headers followed by a chunked body that
 * never ends. A break later, once headers are out, errors the stream (the
 * client's connection is closed without the final chunk, so it cannot take a
 * truncated answer for a whole one) and logs why.
 * @returns the body to send on, or null when the answer had none
 * @throws UpstreamAnswerBrokenError when the body broke before its first byte
 */
export async function passOnBody(body: ReadableStream<Uint8Array> | null, log: BrokenAnswerLog): Promise<ReadableStream<Uint8Array> | null> {
  if (body === null) return null;
  const reader = body.getReader();
  let first: ReadableStreamReadResult<Uint8Array>;
  try {
    first = await reader.read();
  } catch (error) {
    throw new UpstreamAnswerBrokenError(log.sourceName, error);
  }
  if (first.done) return null;
  let passed = first.value.byteLength;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(first.value);
    },
    async pull(controller) {
      try {
        const next = await reader.read();
        if (next.done) controller.close();
        else {
          passed += next.value.byteLength;
          controller.enqueue(next.value);
        }
      } catch (error) {
        console.error(
          JSON.stringify({
            msg: "upstream answer broke mid-stream; client connection closed without the end of the answer",
            requestId: log.requestId,
            source: log.sourceName,
            bytesPassed: passed,
            error: error instanceof Error ? error.name : typeof error,
          }),
        );
        controller.error(new UpstreamAnswerBrokenError(log.sourceName, error));
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/**
 * A source's whole answer as text, for the callers that parse or rewrite it.
 * @throws UpstreamAnswerBrokenError (502) when it ends early or breaks
 */
export async function readAnswerText(response: Response, sourceName: string): Promise<string> {
  try {
    return await response.text();
  } catch (error) {
    throw new UpstreamAnswerBrokenError(sourceName, error);
  }
}
