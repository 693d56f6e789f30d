/**
 * Task definitions (protocol 7), public key files (6.1, 6.2) and the
 * Paillier layout derived from them (9.2). A definition is decoded under
 * every rule of 7.2, and the stated layout must equal the derived one.
 */

import { bitlen, bytesToBig, FixedBase, gcd, isqrt, modPow } from "./bigmath.js";
import { noiseOf, readMechanism, readRational, tailBound } from "./dp.js";
import type { Mechanism, Rational, Relation, TrusteeNoise } from "./dp.js";
import { base64urlEncode, concatBytes, Reader } from "./encoding.js";
import { InvalidTaskError, TaskMismatchError, UnsupportedTaskError } from "./errors.js";
import { readMeasurement } from "./measurement.js";
import type { Measurement } from "./measurement.js";

const MAX_KEY_FILE_BYTES = 64 * 1024 * 1024;
const MAX_DEFINITION_BYTES = 64 * 1024 * 1024;
const MAX_REPORT_PAYLOAD = 16 * 1024 * 1024;
const MAX_SLOT_BITS = 127;
const TFHE_N = 2048;
const MAGIC = [0x48, 0x54, 0x4c, 0x59];
const TASK_ID_DOMAIN = new TextEncoder().encode("hetally task definition v1");

export interface PaillierKey {
  modulusBits: number;
  n: bigint;
  h: bigint;
}

export type TaskLayout =
  | { scheme: "paillier"; slotBits: number }
  | { scheme: "tfhe"; deltaLog2: number; crsHash: Uint8Array | null };

/** A decoded task definition (protocol 7.1, 7.2). */
export interface TaskDefinition {
  version: number;
  measurement: Measurement;
  minBatchSize: bigint;
  maxBatchSize: bigint;
  timePrecision: bigint;
  dp: Mechanism;
  budget: Rational | null;
  scheme: "paillier" | "tfhe";
  /** the whole public key file */
  publicKey: Uint8Array;
  paillierKey: PaillierKey | null;
  /** N of a threshold public key (Paillier 6.8, TFHE 6.10), null for a
   * plain key */
  trustees: number | null;
  layout: TaskLayout;
  inputProofs: boolean;
  relation: Relation;
  /** version 3, flags bit 1: the DP noise is drawn by trustees of a
   * threshold key, `contributors` of them, `honest` assumed honest */
  trusteeNoise: TrusteeNoise | null;
}

/** SHA-256 through WebCrypto. */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data as BufferSource));
}

/** The task id of a canonical definition (protocol 7.4). */
export async function taskIdOf(definition: Uint8Array): Promise<Uint8Array> {
  return sha256(concatBytes([TASK_ID_DOMAIN, definition]));
}

/** Reads a public key file (6.1) and, for Paillier, checks the key (6.2);
 * `trustees` is N of a threshold key (Paillier 6.8, TFHE 6.10), null for
 * a plain key. */
export function readPublicKey(file: Uint8Array): {
  scheme: "paillier" | "tfhe";
  paillier: PaillierKey | null;
  trustees: number | null;
} {
  if (file.length > MAX_KEY_FILE_BYTES) throw new InvalidTaskError("the public key file is over 64 MiB");
  const r = new Reader(file, "the public key file");
  const magic = r.take(4, "the file magic");
  if (magic.some((b, i) => b !== MAGIC[i])) throw new InvalidTaskError("the public key is not a hetally key file (bad magic)");
  const version = r.u8("the file format version");
  if (version !== 1) throw new InvalidTaskError(`the public key file has format version ${version}, not 1`);
  const kind = r.u8("the file kind");
  // Kind 4, a threshold public key: the scheme's public key body, then for
  // Paillier (6.8) the trustee count N, the threshold T and the trustees'
  // verification values, which only the trustees' tools use; for TFHE
  // (6.10) N and the least smudging lambda, which enter the derivation of
  // the task's Delta (10.4). Clients encrypt under the body alone.
  if (kind !== 1 && kind !== 4) {
    throw new InvalidTaskError(`the public key file has kind ${kind}, not 1 (public key) or 4 (threshold public key)`);
  }
  const scheme = r.u8("the key's scheme");
  if (scheme === 2) {
    const set = r.u8("the TFHE parameter set");
    if (set !== 1) throw new InvalidTaskError(`unknown TFHE parameter set ${set}`);
    r.take(16 * TFHE_N, "the TFHE public key polynomials");
    let trustees: number | null = null;
    if (kind === 4) {
      trustees = r.u16("the trustee count");
      const minLambda = r.u8("min_lambda");
      if (trustees < 2 || trustees > 64) {
        throw new InvalidTaskError(`a threshold TFHE key with trustees = ${trustees} is not allowed (2 to 64)`);
      }
      if (minLambda > 40) {
        throw new InvalidTaskError(`a threshold TFHE key with min_lambda = ${minLambda} is not allowed (0 to 40)`);
      }
    }
    r.finish();
    return { scheme: "tfhe", paillier: null, trustees };
  }
  if (scheme !== 1) throw new InvalidTaskError(`unknown key scheme ${scheme}`);
  const modulusBits = r.u16("modulus_bits");
  if (modulusBits !== 2048 && modulusBits !== 3072) {
    throw new InvalidTaskError(`a Paillier modulus of ${modulusBits} bits is not allowed (2048 or 3072)`);
  }
  const n = bytesToBig(r.take(modulusBits / 8, "n"));
  const h = bytesToBig(r.take(modulusBits / 8, "h"));
  let trustees: number | null = null;
  if (kind === 4) {
    trustees = r.u16("the trustee count");
    const threshold = r.u16("the threshold");
    if (trustees < 2 || trustees > 64 || threshold < 2 || threshold > trustees) {
      throw new InvalidTaskError(`a threshold key of ${threshold} of ${trustees} trustees is not allowed (2 <= T <= N <= 64)`);
    }
    const n2 = n * n;
    const len = Math.ceil(bitlen(n2) / 8);
    for (let i = 0; i <= trustees; i++) {
      const v = bytesToBig(r.take(len, "a verification value"));
      if (v === 0n || v >= n2 || gcd(v, n) !== 1n) {
        throw new InvalidTaskError("a verification value of the threshold key is not a unit below n^2");
      }
    }
  }
  r.finish();
  if (bitlen(n) !== modulusBits) throw new InvalidTaskError(`the modulus n has ${bitlen(n)} bits, not ${modulusBits}`);
  if ((n & 1n) === 0n) throw new InvalidTaskError("the modulus n is even");
  const root = isqrt(n);
  if (root * root === n) throw new InvalidTaskError("the modulus n is a perfect square");
  if (h <= 1n || h >= n) throw new InvalidTaskError("the key's h is not in (1, n)");
  if (gcd(h, n) !== 1n) throw new InvalidTaskError("the key's h is not a unit modulo n");
  return { scheme: "paillier", paillier: { modulusBits, n, h }, trustees };
}

/** Decodes a canonical task definition under every rule of 7.2. */
export function decodeDefinition(bytes: Uint8Array): TaskDefinition {
  if (bytes.length > MAX_DEFINITION_BYTES) throw new InvalidTaskError("the task definition is over 64 MiB");
  const r = new Reader(bytes, "the task definition");
  const version = r.u8("the version");
  if (version < 1 || version > 3) throw new InvalidTaskError(`task definition version ${version} is not supported (1, 2 or 3)`);
  const measurement = readMeasurement(r);
  const minBatchSize = r.u64("min_batch_size");
  const maxBatchSize = r.u64("max_batch_size");
  const timePrecision = r.u64("time_precision");
  if (minBatchSize < 1n) throw new InvalidTaskError("min_batch_size is 0");
  if (maxBatchSize < minBatchSize) throw new InvalidTaskError("max_batch_size is below min_batch_size");
  if (timePrecision < 1n || timePrecision > 604800n) {
    throw new InvalidTaskError(`time_precision ${timePrecision} is outside 1..=604800`);
  }
  const dp = readMechanism(r);
  const budgetFlag = r.u8("the budget flag");
  if (budgetFlag > 1) throw new InvalidTaskError(`budget flag ${budgetFlag} is not 0 or 1`);
  const budget = budgetFlag === 1 ? readRational(r, "the budget") : null;
  if ((budget !== null) !== (dp.kind !== "none")) {
    throw new InvalidTaskError("a budget must be present exactly when the task has a DP mechanism");
  }
  if (budget !== null && budget.num === 0n) throw new InvalidTaskError("the budget is zero");
  const schemeByte = r.u8("the scheme");
  if (schemeByte !== 1 && schemeByte !== 2) throw new InvalidTaskError(`unknown scheme ${schemeByte}`);
  const publicKey = r.varBytes(MAX_KEY_FILE_BYTES, "the public key");
  const key = readPublicKey(publicKey);
  const scheme = schemeByte === 1 ? "paillier" : "tfhe";
  if (key.scheme !== scheme) throw new InvalidTaskError("the task's scheme differs from its public key's");
  let layout: TaskLayout;
  if (scheme === "paillier") {
    layout = { scheme, slotBits: r.u32("slot_bits") };
  } else {
    const deltaLog2 = r.u8("delta_log2");
    const crsFlag = r.u8("the CRS flag");
    if (crsFlag > 1) throw new InvalidTaskError(`CRS flag ${crsFlag} is not 0 or 1`);
    layout = { scheme, deltaLog2, crsHash: crsFlag === 1 ? r.take(32, "the CRS hash") : null };
  }
  let inputProofs = false;
  let relation: Relation = null;
  let trusteeFlag = false;
  if (version >= 2) {
    const flags = r.u8("the flags");
    // Version 3: bit 0 input proofs, bit 1 trustee noise; version 2: 01.
    if ((version === 2 && flags !== 1) || (version === 3 && flags > 3)) {
      throw new InvalidTaskError(`flags byte ${flags} is not allowed in a version ${version} definition`);
    }
    inputProofs = (flags & 1) === 1;
    trusteeFlag = (flags & 2) === 2;
  }
  let trusteeNoise: TrusteeNoise | null = null;
  if (version === 3) {
    const rel = r.u8("the relation");
    if (rel !== 1 && rel !== 2) throw new InvalidTaskError(`unknown relation ${rel}`);
    relation = rel === 1 ? "add-remove" : "replace-one";
    if (trusteeFlag) trusteeNoise = { contributors: r.u8("the contributor count"), honest: r.u8("the honest count") };
  }
  r.finish();
  if (trusteeNoise !== null) {
    const { contributors, honest } = trusteeNoise;
    if (honest < 1 || honest > contributors) {
      throw new InvalidTaskError(`trustee noise assuming ${honest} of ${contributors} contributors honest is not allowed (1 <= honest <= contributors)`);
    }
    if (dp.kind !== "gaussian" || relation !== "replace-one") {
      throw new InvalidTaskError("trustee noise needs the Gaussian mechanism and the replace-one relation");
    }
    // A threshold TFHE key (6.10) has trustees too, but they only decrypt.
    if (key.scheme !== "paillier" || key.trustees === null) {
      throw new InvalidTaskError("trustee noise needs a Paillier threshold key");
    }
    if (contributors > key.trustees) {
      throw new InvalidTaskError(
        `trustee noise from ${contributors} contributors needs at least that many trustees, not ${key.trustees}`,
      );
    }
  }
  if (relation === "add-remove" && (dp.kind === "none" || scheme !== "paillier")) {
    throw new InvalidTaskError("add-remove needs a DP mechanism and the Paillier scheme");
  }
  if (layout.scheme === "tfhe" && (layout.crsHash !== null) !== inputProofs) {
    throw new InvalidTaskError("a TFHE task has a CRS exactly when it has input proofs");
  }
  return {
    version, measurement, minBatchSize, maxBatchSize, timePrecision, dp, budget,
    scheme, publicKey, paillierKey: key.paillier, trustees: key.trustees, layout, inputProofs, relation, trusteeNoise,
  };
}

/** The Paillier slot width w of protocol 9.2, or an error. */
export function deriveSlotBits(def: TaskDefinition, modulusBits: number): number {
  const noise = noiseOf(def.dp, def.measurement, def.relation, def.trusteeNoise);
  const t = tailBound(noise, 64);
  const max = (1n << BigInt(def.measurement.valueBits)) - 1n;
  const maxAbs =
    def.relation === "add-remove" ? (def.maxBatchSize + t) * max + t : def.maxBatchSize * max + t;
  const w = Math.max(bitlen(maxAbs), 1) + 2;
  if (w < 2 || w > MAX_SLOT_BITS || w + 2 > modulusBits) {
    throw new InvalidTaskError(`the derived slot width ${w} does not fit (at most 127 bits and modulus_bits - 2)`);
  }
  return w;
}

/** A Paillier task ready to prepare reports: the verified definition, its
 * id, and the values derived from the key (6.2) and layout (9.2). */
export class PaillierTask {
  readonly n: bigint;
  readonly n2: bigint;
  /** bytes of a ciphertext, ceil(bitlen(n^2) / 8) */
  readonly ctLen: number;
  readonly slotBits: number;
  /** slots per plaintext */
  readonly k: number;
  /** packed plaintexts (ciphertexts without proofs) per report */
  readonly plaintexts: number;
  /** bit ciphertexts of a report with proofs */
  readonly bits: number;
  private hBase: FixedBase | null = null;

  private constructor(
    readonly definition: TaskDefinition,
    readonly definitionBytes: Uint8Array,
    readonly taskId: Uint8Array,
    readonly keyFingerprint: Uint8Array,
    readonly key: PaillierKey,
  ) {
    this.n = key.n;
    this.n2 = key.n * key.n;
    this.ctLen = Math.ceil(bitlen(this.n2) / 8);
    this.slotBits = (definition.layout as { slotBits: number }).slotBits;
    this.k = Math.floor((key.modulusBits - 2) / this.slotBits);
    this.plaintexts = Math.ceil(definition.measurement.len / this.k);
    this.bits = definition.measurement.len * definition.measurement.valueBits;
  }

  /** Trustee noise (7.2 flags bit 1), or null when the server draws it. */
  get trusteeNoise(): TrusteeNoise | null {
    return this.definition.trusteeNoise;
  }

  /** The task id in text form. */
  get id(): string {
    return base64urlEncode(this.taskId);
  }

  /** H = h^n mod n^2 as a fixed base, computed on first use and kept. */
  get H(): FixedBase {
    if (this.hBase === null) {
      const H = modPow(this.key.h, this.n, this.n2);
      this.hBase = new FixedBase(H, this.n2, 536);
    }
    return this.hBase;
  }

  /**
   * Checks a definition against the task id it was fetched for (7.6 step
   * 2), decodes it (step 3) and re-derives its layout (7.3). A TFHE task
   * is refused with UnsupportedTaskError.
   */
  static async fromDefinition(definition: Uint8Array, expectedId?: Uint8Array): Promise<PaillierTask> {
    const id = await taskIdOf(definition);
    if (expectedId !== undefined && !id.every((b, i) => b === expectedId[i])) {
      throw new TaskMismatchError(
        `the server's task definition hashes to ${base64urlEncode(id)}, not to the task id ` +
          `${base64urlEncode(expectedId)}: the server is wrong or substituted the task's key`,
      );
    }
    const def = decodeDefinition(definition);
    if (def.scheme !== "paillier" || def.paillierKey === null || def.layout.scheme !== "paillier") {
      throw new UnsupportedTaskError("TFHE tasks are not supported in this SDK");
    }
    const derived = deriveSlotBits(def, def.paillierKey.modulusBits);
    if (derived !== def.layout.slotBits) {
      throw new InvalidTaskError(
        `the definition states ${def.layout.slotBits}-bit slots but its fields derive ${derived} (protocol 9.2)`,
      );
    }
    const task = new PaillierTask(def, definition, id, await sha256(def.publicKey), def.paillierKey);
    if (def.inputProofs) {
      const payload = 5 + task.bits * (3 * task.ctLen + 16 + 2 * 68) +
        (def.measurement.kind === "histogram" ? task.ctLen + 68 : 0);
      if (payload > MAX_REPORT_PAYLOAD) {
        throw new InvalidTaskError(`a report with proofs would be ${payload} bytes, over 16 MiB`);
      }
    }
    return task;
  }
}
