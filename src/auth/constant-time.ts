const encoder = new TextEncoder();

/** SHA-256 of a string: equal-length inputs for a constant-time comparison. */
export async function digest(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(text));
}

/**
 * Compares a presented secret with known digests in constant time: both sides
 * are hashed to 32 bytes and compared with the runtime's `timingSafeEqual`,
 * and every candidate is checked, so neither the length nor the position of a
 * match leaks through timing.
 * @returns the index of the matching digest, or -1
 */
export async function findSecret(presented: string, known: readonly ArrayBuffer[]): Promise<number> {
  const candidate = await digest(presented);
  let found = -1;
  for (let i = 0; i < known.length; i++) {
    if (crypto.subtle.timingSafeEqual(candidate, known[i]!) && found === -1) found = i;
  }
  return found;
}
