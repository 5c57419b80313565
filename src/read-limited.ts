import { InvalidRequestError } from "./errors.ts";

/**
 * Reads a request body as text, refusing it (400, `tooLarge.code`) as soon as
 * it passes `limit` bytes, whether or not it declared a Content-Length: a
 * chunked body cannot get past the limit, and nothing past it is buffered.
 */
export async function readLimited(request: Request, limit: number, tooLarge: { code: string; message: string }): Promise<string> {
  const refuse = () => new InvalidRequestError(tooLarge.code, tooLarge.message);
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > limit) throw refuse();
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw refuse();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return new TextDecoder().decode(all);
}
