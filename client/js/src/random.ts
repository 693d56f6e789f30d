/**
 * Where a report's random bytes come from: `crypto.getRandomValues` in
 * production, or a tape of recorded bytes that must be used up exactly
 * (protocol 15.3, for the test vectors).
 */

import { bytesToBig } from "./bigmath.js";
import { HetallyError } from "./errors.js";

export interface RandomSource {
  /** The next `k` random bytes. */
  take(k: number): Uint8Array;
}

/** Fresh bytes from the platform's CSPRNG. */
export const cryptoRandom: RandomSource = {
  take(k: number): Uint8Array {
    const out = new Uint8Array(k);
    // getRandomValues fills at most 65536 bytes per call.
    for (let at = 0; at < k; at += 65536) {
      globalThis.crypto.getRandomValues(out.subarray(at, Math.min(k, at + 65536)));
    }
    return out;
  },
};

/** Recorded bytes, taken in order; `finish` fails unless all were used. */
export class Tape implements RandomSource {
  private at = 0;
  constructor(private readonly bytes: Uint8Array) {}

  take(k: number): Uint8Array {
    if (this.at + k > this.bytes.length) {
      throw new HetallyError(
        `the randomness tape is too short: ${this.bytes.length} bytes, and the report needs more than ${this.at}`,
      );
    }
    const out = this.bytes.slice(this.at, this.at + k);
    this.at += k;
    return out;
  }

  finish(): void {
    if (this.at !== this.bytes.length) {
      throw new HetallyError(
        `the randomness tape has ${this.bytes.length - this.at} bytes left over: it does not belong to this report`,
      );
    }
  }
}

/** random_bits(b) of protocol 15.3: ceil(b/8) bytes, the top 8L - b bits
 * of the first cleared, read big-endian. */
export function randomBits(source: RandomSource, b: number): bigint {
  const len = Math.ceil(b / 8);
  const bytes = source.take(len);
  bytes[0] &= 0xff >> (8 * len - b);
  return bytesToBig(bytes);
}
