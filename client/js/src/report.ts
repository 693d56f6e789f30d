/**
 * Preparing a Paillier report (protocol 8.1, 9.2 to 9.6): packing,
 * fast-form encryption, the bit proofs and the histogram sum proof, in
 * the order of random draws of 15.3.
 */

import { bigToBytes, bytesToBig, modInverse, modPow } from "./bigmath.js";
import { base64urlEncode, concatBytes, Writer } from "./encoding.js";
import { HetallyError } from "./errors.js";
import { measurementValues } from "./measurement.js";
import type { RandomSource } from "./random.js";
import { randomBits } from "./random.js";
import { sha256 } from "./task.js";
import type { PaillierTask } from "./task.js";

const Q = 1n << 128n;
const MASK_BITS = 536;
const RESPONSE_BYTES = 68;
const CHALLENGE_BYTES = 16;
const PROOF_DOMAIN = new TextEncoder().encode("hetally paillier input proof v1");

/** A prepared report: its id (base64url), its time and the exact body of
 * `PUT /tasks/{id}/reports`. */
export interface PreparedReport {
  id: string;
  time: number;
  bytes: Uint8Array;
}

/** c = (1 + m n) * H^alpha mod n^2 (the fast form of 9.1). */
function encryptFast(task: PaillierTask, m: bigint, alpha: bigint): bigint {
  return ((1n + m * task.n) * task.H.pow(alpha)) % task.n2;
}

/** g^x = 1 + (x mod n) n mod n^2 for any integer x. */
function gPow(task: PaillierTask, x: bigint): bigint {
  const r = x % task.n;
  return 1n + (r < 0n ? r + task.n : r) * task.n;
}

function payloadWithoutProofs(task: PaillierTask, values: bigint[], rng: RandomSource): Uint8Array {
  const w = BigInt(task.slotBits);
  const out = new Writer().u32(task.plaintexts);
  for (let j = 0; j < task.plaintexts; j++) {
    let p = 0n;
    const end = Math.min(values.length, (j + 1) * task.k);
    for (let i = end - 1; i >= j * task.k; i--) p = (p << w) | values[i];
    const alpha = randomBits(rng, 256);
    out.bytes(bigToBytes(encryptFast(task, p, alpha), task.ctLen));
  }
  return out.finish();
}

function field(label: string, value: Uint8Array): Uint8Array {
  const l = new TextEncoder().encode(label);
  return new Writer().u32(l.length).bytes(l).u64(BigInt(value.length)).bytes(value).finish();
}

async function payloadWithProofs(
  task: PaillierTask,
  values: bigint[],
  reportId: Uint8Array,
  time: bigint,
  rng: RandomSource,
): Promise<Uint8Array> {
  const m = task.definition.measurement;
  const bits: number[] = [];
  for (const v of values) for (let j = 0; j < m.valueBits; j++) bits.push(Number((v >> BigInt(j)) & 1n));
  const { n, n2, ctLen } = task;
  const H = task.H;
  const c: bigint[] = [];
  const a: [bigint, bigint][] = [];
  const state: { b: number; alpha: bigint; s: bigint; ef: bigint; zf: bigint }[] = [];
  for (const b of bits) {
    const alpha = randomBits(rng, 256);
    const s = randomBits(rng, MASK_BITS);
    const ef = randomBits(rng, 128);
    const zf = randomBits(rng, MASK_BITS);
    const ci = encryptFast(task, BigInt(b), alpha);
    const ab = H.pow(s);
    // u_f = c g^-f = g^(b-f) H^alpha, so u_f^(-e_f) = g^(-(b-f) e_f) H^(-alpha e_f):
    // a_f = H^(z_f - alpha e_f) g^(-(b-f) e_f), with no inverse, when z_f >= alpha e_f.
    const f = 1 - b;
    let af: bigint;
    const ae = alpha * ef;
    if (zf >= ae) {
      af = (H.pow(zf - ae) * gPow(task, -BigInt(b - f) * ef)) % n2;
    } else {
      const uf = f === 0 ? ci : (ci * (1n - n + n2)) % n2;
      const inv = modInverse(uf, n2);
      if (inv === null) throw new HetallyError("a bit ciphertext is not a unit (the key is broken)");
      af = (H.pow(zf) * modPow(inv, ef, n2)) % n2;
    }
    c.push(ci);
    a.push(b === 0 ? [ab, af] : [af, ab]);
    state.push({ b, alpha, s, ef, zf });
  }
  const histogram = m.kind === "histogram";
  let sSum = 0n;
  let aSum = 0n;
  if (histogram) {
    sSum = randomBits(rng, MASK_BITS);
    aSum = H.pow(sSum);
  }
  // The Fiat-Shamir transcript of 9.6.
  const t: Uint8Array[] = [
    field("domain", PROOF_DOMAIN),
    field("task id", task.taskId),
    field("report id", reportId),
    field("time", new Writer().u64(time).finish()),
    field("public key", task.keyFingerprint),
    field("measurement", m.encoding),
    field("bits", new Writer().u64(BigInt(bits.length)).finish()),
  ];
  const cBytes = c.map((x) => bigToBytes(x, ctLen));
  const aBytes = a.map(([a0, a1]) => [bigToBytes(a0, ctLen), bigToBytes(a1, ctLen)]);
  for (const cb of cBytes) t.push(field("ciphertext", cb));
  for (const [a0, a1] of aBytes) t.push(field("a0", a0), field("a1", a1));
  const aSumBytes = histogram ? bigToBytes(aSum, ctLen) : null;
  if (aSumBytes !== null) t.push(field("a sum", aSumBytes));
  const digest = await sha256(concatBytes(t));
  const e = bytesToBig(digest.subarray(0, CHALLENGE_BYTES));

  const out = new Writer().u8(1).u32(bits.length);
  for (const cb of cBytes) out.bytes(cb);
  let alphaSum = 0n;
  state.forEach(({ b, alpha, s, ef, zf }, i) => {
    const eb = (((e - ef) % Q) + Q) % Q;
    const zb = s + eb * alpha;
    alphaSum += alpha;
    out.bytes(aBytes[i][0]).bytes(aBytes[i][1]);
    out.bytes(bigToBytes(b === 0 ? eb : ef, CHALLENGE_BYTES));
    out.bytes(bigToBytes(b === 0 ? zb : zf, RESPONSE_BYTES));
    out.bytes(bigToBytes(b === 1 ? zb : zf, RESPONSE_BYTES));
  });
  if (aSumBytes !== null) {
    out.bytes(aSumBytes).bytes(bigToBytes(sSum + e * alphaSum, RESPONSE_BYTES));
  }
  return out.finish();
}

/**
 * Prepares a report of `input` at Unix time `time` (seconds), drawing its
 * randomness from `rng` in the order of protocol 15.3.
 */
export async function prepareReport(
  task: PaillierTask,
  input: unknown,
  time: number | bigint,
  rng: RandomSource,
): Promise<PreparedReport> {
  const values = measurementValues(task.definition.measurement, input);
  if (typeof time === "number" ? !Number.isSafeInteger(time) || time < 0 : time < 0n) {
    throw new HetallyError(`the report time ${time} is not a Unix time in whole seconds`);
  }
  const t = BigInt(time);
  const reportTime = t - (t % task.definition.timePrecision);
  const reportId = rng.take(16);
  const payload = task.definition.inputProofs
    ? await payloadWithProofs(task, values, reportId, reportTime, rng)
    : payloadWithoutProofs(task, values, rng);
  const bytes = new Writer().u8(1).bytes(reportId).u64(reportTime).u32(payload.length).bytes(payload).finish();
  return { id: base64urlEncode(reportId), time: Number(reportTime), bytes };
}
