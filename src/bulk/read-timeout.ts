import { UpstreamTimeoutError } from "../errors.ts";

/**
 * Passes a body through one chunk at a time, pulled by the client: nothing
 * is read from upstream before the client asks for it (no buffering, so a
 * 1 GB file holds no more memory than a 1 MB one), and a read that waits
 * longer than `ms` for the upstream's next chunk ends the stream with an
 * error, cancelling the upstream, instead of holding the client forever.
 * The wait counts only time spent on the upstream, never on a slow client.
 * @param onStall told once when the stream is cut off, for the log
 */
export function withReadTimeout(body: ReadableStream<Uint8Array>, ms: number, onStall: () => void = () => {}): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let timer: ReturnType<typeof setTimeout> | null = null;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new UpstreamTimeoutError(`The upstream sent nothing for ${ms / 1000} s`)), ms);
        });
        try {
          const { done, value } = await Promise.race([reader.read(), stalled]);
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          if (error instanceof UpstreamTimeoutError) onStall();
          reader.cancel(error).catch(() => {});
          controller.error(error);
        } finally {
          if (timer !== null) clearTimeout(timer);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
