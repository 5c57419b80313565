/**
 * Every comparison walks at least this many characters, so for secrets up to
 * this length the time depends on the presented value's length only, never on
 * a secret's content or length (bar the few cycles of a bounds check).
 */
const MIN_WALK = 256;

/** 0 when `a` and `b` are the same string, else non-zero; no early exit. */
function difference(a: string, b: string): number {
  let diff = a.length ^ b.length;
  const walk = Math.max(MIN_WALK, a.length, b.length);
  for (let i = 0; i < walk; i++) {
    // Past either end, both sides read as 0: the length check above already differs.
    diff |= (i < a.length ? a.charCodeAt(i) : 0) ^ (i < b.length ? b.charCodeAt(i) : 0);
  }
  return diff;
}

/**
 * Compares a presented secret with the known ones in constant time, in
 * JavaScript and synchronously (no digest, no promise on the hot path):
 * every candidate is compared over its full walk, whatever matched, so
 * timing reveals neither where a mismatch is, nor which secret matched, nor
 * (for secrets up to 256 characters) how long they are.
 * @returns the index of the matching secret, or -1
 */
export function findSecret(presented: string, known: readonly string[]): number {
  // Longer than every secret can match none: refused before any walk, so a
  // huge header costs nothing (this says only that no secret is that long).
  let longest = MIN_WALK;
  for (const secret of known) longest = Math.max(longest, secret.length);
  if (presented.length > longest) return -1;
  let found = -1;
  for (let i = 0; i < known.length; i++) {
    if (difference(presented, known[i]!) === 0 && found === -1) found = i;
  }
  return found;
}
