/**
 * Big-integer arithmetic on native BigInt: conversions to and from
 * big-endian bytes, gcd, integer square roots, a sliding-window modular
 * exponentiation and a fixed-base exponentiation with a precomputed table
 * (for the key's base H, which every encryption and proof raises).
 */

import { bytesToHex } from "./encoding.js";

export function bytesToBig(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt("0x" + bytesToHex(bytes));
}

/** The big-endian magnitude of `x >= 0`, left-padded to exactly `len`
 * bytes; throws if it does not fit (protocol 2.2). */
export function bigToBytes(x: bigint, len: number): Uint8Array {
  if (x < 0n) throw new RangeError("negative integer cannot be encoded");
  const hex = x.toString(16);
  if (hex.length > 2 * len) throw new RangeError(`integer does not fit in ${len} bytes`);
  const padded = hex.padStart(2 * len, "0");
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = parseInt(padded.substr(2 * i, 2), 16);
  return out;
}

/** The number of significant bits of `x >= 0` (bitlen(0) = 0). */
export function bitlen(x: bigint): number {
  if (x === 0n) return 0;
  const hex = x.toString(16);
  return (hex.length - 1) * 4 + (32 - Math.clz32(parseInt(hex[0], 16)));
}

export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

export function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** The inverse of `a` modulo `m`, or null if they are not coprime. */
export function modInverse(a: bigint, m: bigint): bigint | null {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return r0 === 1n ? mod(s0, m) : null;
}

/** floor(sqrt(x)) for x >= 0, by Newton's method. */
export function isqrt(x: bigint): bigint {
  if (x < 0n) throw new RangeError("square root of a negative number");
  if (x < 2n) return x;
  let y = 1n << BigInt(Math.ceil(bitlen(x) / 2));
  for (;;) {
    const z = (y + x / y) >> 1n;
    if (z >= y) return y;
    y = z;
  }
}

/** The smallest integer m >= 0 with m^2 >= x. */
export function ceilSqrt(x: bigint): bigint {
  const r = isqrt(x);
  return r * r < x ? r + 1n : r;
}

/** base^exp mod m for exp >= 0, left to right with a sliding window over
 * odd powers. */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  if (m === 1n) return 0n;
  if (exp < 0n) throw new RangeError("negative exponent");
  const b = mod(base, m);
  if (exp === 0n) return 1n;
  const bits = exp.toString(2);
  const k = bits.length > 512 ? 5 : bits.length > 128 ? 4 : bits.length > 24 ? 3 : 1;
  // odd[i] = b^(2i+1)
  const odd: bigint[] = [b];
  if (k > 1) {
    const b2 = (b * b) % m;
    for (let i = 1; i < 1 << (k - 1); i++) odd.push((odd[i - 1] * b2) % m);
  }
  let acc = 1n;
  let started = false;
  let i = 0;
  while (i < bits.length) {
    if (bits[i] === "0") {
      if (started) acc = (acc * acc) % m;
      i++;
      continue;
    }
    // The longest window of at most k bits that starts here and ends in a 1.
    let j = Math.min(i + k, bits.length);
    while (bits[j - 1] === "0") j--;
    const value = parseInt(bits.slice(i, j), 2);
    if (started) {
      for (let s = i; s < j; s++) acc = (acc * acc) % m;
      acc = (acc * odd[value >> 1]) % m;
    } else {
      acc = odd[value >> 1];
      started = true;
    }
    i = j;
  }
  return acc;
}

/**
 * base^e mod m for a fixed base and exponents of up to `maxBits` bits:
 * table[i][d - 1] = base^(d * 2^(W i)) for every W-bit digit d, so that a
 * power costs one multiplication per non-zero digit and no squaring.
 * Larger exponents fall back to modPow.
 */
export class FixedBase {
  private static readonly W = 5;
  private readonly table: bigint[][] = [];

  constructor(
    readonly base: bigint,
    readonly m: bigint,
    readonly maxBits: number,
  ) {
    const W = FixedBase.W;
    let g = mod(base, m);
    for (let i = 0; i * W < maxBits; i++) {
      const row = [g];
      for (let d = 2; d < 1 << W; d++) row.push((row[d - 2] * g) % m);
      this.table.push(row);
      g = (row[row.length - 1] * g) % m; // g^(2^W)
    }
  }

  pow(e: bigint): bigint {
    if (e < 0n) throw new RangeError("negative exponent");
    if (bitlen(e) > this.maxBits) return modPow(this.base, e, this.m);
    const W = FixedBase.W;
    const hex = e.toString(2);
    let acc = 1n;
    let row = 0;
    for (let end = hex.length; end > 0; end -= W, row++) {
      const d = parseInt(hex.slice(Math.max(0, end - W), end), 2);
      if (d !== 0) acc = (acc * this.table[row][d - 1]) % this.m;
    }
    return acc;
  }
}
