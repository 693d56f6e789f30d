/**
 * Exact rationals (protocol 5.1), DP mechanisms (5.2), sensitivities and
 * noise calibration (5.3) and the noise tail bound (5.4): everything a
 * client needs to re-derive a Paillier task's slot width (9.2).
 */

import { bitlen, ceilSqrt, gcd, isqrt } from "./bigmath.js";
import { InvalidTaskError } from "./errors.js";
import type { Reader } from "./encoding.js";
import type { Measurement } from "./measurement.js";

/** A non-negative rational num/den in lowest terms, den > 0. */
export interface Rational {
  num: bigint;
  den: bigint;
}

export function rational(num: bigint, den: bigint): Rational {
  if (den === 0n) throw new RangeError("zero denominator");
  const g = gcd(num, den);
  return g === 0n ? { num: 0n, den: 1n } : { num: num / g, den: den / g };
}

function mul(a: Rational, b: Rational): Rational {
  return rational(a.num * b.num, a.den * b.den);
}

function div(a: Rational, b: Rational): Rational {
  return rational(a.num * b.den, a.den * b.num);
}

function gt(a: Rational, b: Rational): boolean {
  return a.num * b.den > b.num * a.den;
}

function ceil(a: Rational): bigint {
  return (a.num + a.den - 1n) / a.den;
}

function minimalMagnitude(bytes: Uint8Array, field: string): bigint {
  if (bytes.length === 0 || (bytes[0] === 0 && bytes.length > 1)) {
    throw new InvalidTaskError(`${field} is not written in the fewest bytes (protocol 5.1)`);
  }
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** Reads a rational (protocol 5.1), rejecting non-canonical encodings. */
export function readRational(r: Reader, field: string): Rational {
  const num = minimalMagnitude(r.varBytes(64, `the numerator of ${field}`), `the numerator of ${field}`);
  const den = minimalMagnitude(r.varBytes(64, `the denominator of ${field}`), `the denominator of ${field}`);
  if (den === 0n) throw new InvalidTaskError(`${field} has a zero denominator`);
  if (gcd(num, den) !== 1n) throw new InvalidTaskError(`${field} is not in lowest terms`);
  return { num, den };
}

export type Mechanism =
  | { kind: "none" }
  | { kind: "laplace"; epsilon: Rational }
  | { kind: "gaussian"; rho: Rational };

export function readMechanism(r: Reader): Mechanism {
  const tag = r.u8("the DP mechanism tag");
  if (tag === 0) return { kind: "none" };
  if (tag !== 1 && tag !== 2) throw new InvalidTaskError(`unknown DP mechanism tag ${tag}`);
  const p = readRational(r, tag === 1 ? "epsilon" : "rho");
  if (p.num === 0n) throw new InvalidTaskError("the DP mechanism's parameter must be greater than zero");
  return tag === 1 ? { kind: "laplace", epsilon: p } : { kind: "gaussian", rho: p };
}

export type Relation = "add-remove" | "replace-one" | null;

/** [L1, L2^2] of protocol 5.3. */
export function sensitivity(m: Measurement, relation: Relation): [bigint, bigint] {
  const max = (1n << BigInt(m.valueBits)) - 1n;
  const len = BigInt(m.len);
  let l1: bigint;
  let l2: bigint;
  switch (m.kind) {
    case "count":
      [l1, l2] = [1n, 1n];
      break;
    case "sum":
      [l1, l2] = [max, max * max];
      break;
    case "histogram":
      [l1, l2] = relation === null ? [1n, 1n] : [2n, 2n];
      return [l1, l2];
    case "sumvec":
      [l1, l2] = [len * max, len * max * max];
      break;
  }
  // Under add-remove the report count is one more released value.
  return relation === "add-remove" ? [l1 + 1n, l2 + 1n] : [l1, l2];
}

const LN2_UP = rational(6931471805599454n, 10n ** 16n);
const MAX_TAIL = (1n << 128n) - 1n;

export type Noise =
  | { kind: "none" }
  | { kind: "laplace"; scale: Rational }
  /** `shares` independent draws of parameter sigma, summed: 1 for noise the
   * server draws, the contributor count for trustee noise. */
  | { kind: "gaussian"; sigma: Rational; shares: number };

/** The trustee-noise fields of a task definition (protocol 7.2). */
export interface TrusteeNoise {
  contributors: number;
  honest: number;
}

/**
 * The exact square root of the variance v if it is rational, otherwise the
 * smallest decimal with about 10 significant digits above it (5.3); fails
 * if v exceeds 2^200 or the result 2^100.
 */
export function sigmaAtLeast(v: Rational, what: string): Rational {
  if (gt(v, rational(1n << 200n, 1n))) {
    throw new InvalidTaskError(`the variance of ${what} exceeds 2^200 (protocol 5.3)`);
  }
  let sigma: Rational;
  const rn = isqrt(v.num);
  const rd = isqrt(v.den);
  if (rn * rn === v.num && rd * rd === v.den) {
    sigma = rational(rn, rd);
  } else {
    const a = Math.sqrt(Number(v.num) / Number(v.den));
    const mag = a === 0 ? 0 : Math.floor(Math.log10(a));
    const p = Math.min(Math.max(9 - mag, 0), 300);
    const scale = 10n ** BigInt(p);
    const m2 = ceil(mul(v, rational(scale * scale, 1n)));
    sigma = rational(ceilSqrt(m2), scale);
  }
  if (gt(sigma, rational(1n << 100n, 1n))) {
    throw new InvalidTaskError(`the parameter sigma of ${what} exceeds 2^100 (protocol 5.3)`);
  }
  return sigma;
}

/**
 * The noise distribution of one release (protocol 5.3). With trustee noise
 * each of the `contributors` trustees draws a discrete Gaussian of
 * parameter sigmaAtLeast(sigma^2 / honest), and the release holds their sum.
 */
export function noiseOf(mech: Mechanism, m: Measurement, relation: Relation, trustees: TrusteeNoise | null = null): Noise {
  const [l1, l2sq] = sensitivity(m, relation);
  if (mech.kind === "none") return { kind: "none" };
  if (mech.kind === "laplace") {
    const scale = div(rational(l1, 1n), mech.epsilon);
    if (gt(scale, rational(1n << 100n, 1n))) {
      throw new InvalidTaskError("the Laplace noise scale exceeds 2^100 (protocol 5.3)");
    }
    return { kind: "laplace", scale };
  }
  const v = div(rational(l2sq, 1n), mul(rational(2n, 1n), mech.rho));
  if (trustees === null) return { kind: "gaussian", sigma: sigmaAtLeast(v, "the Gaussian noise"), shares: 1 };
  const share = sigmaAtLeast(div(v, rational(BigInt(trustees.honest), 1n)), "a trustee's Gaussian noise share");
  return { kind: "gaussian", sigma: share, shares: trustees.contributors };
}

/** tail_bound(L) of protocol 5.4. */
export function tailBound(noise: Noise, L: number): bigint {
  const b = mul(rational(BigInt(L + 1), 1n), LN2_UP);
  let t: bigint;
  if (noise.kind === "none") t = 0n;
  else if (noise.kind === "laplace") t = ceil(mul(noise.scale, b));
  else {
    // (t+1)^2 >= 2 V (L+1) ln2 with V = shares * sigma^2, the variance
    // bound of a sum of independent shares (5.4).
    const x = ceil(mul(mul(rational(2n * BigInt(noise.shares), 1n), mul(noise.sigma, noise.sigma)), b));
    t = ceilSqrt(x) - 1n;
  }
  return t > MAX_TAIL ? MAX_TAIL : t;
}

/** tail_bound_for_all(len, L) of protocol 5.4. */
export function tailBoundForAll(noise: Noise, len: number, L: number): bigint {
  return tailBound(noise, len <= 1 ? L : L + bitlen(BigInt(len - 1)));
}
