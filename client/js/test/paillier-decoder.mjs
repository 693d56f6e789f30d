// A test-only Paillier aggregate decoder (docs/protocol.md 6.3, 12.1, 12.3,
// 9.1 decryption and 9.2 unpacking), so that the vectors' aggregates and
// the end-to-end releases can be checked in JavaScript. Not part of the SDK.

const big = (b) => (b.length === 0 ? 0n : BigInt("0x" + Buffer.from(b).toString("hex")));

function reader(bytes) {
  let at = 0;
  const take = (n) => {
    if (at + n > bytes.length) throw new Error("truncated");
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  return {
    take,
    u8: () => take(1)[0],
    u16: () => Buffer.from(take(2)).readUInt16BE(),
    u32: () => Buffer.from(take(4)).readUInt32BE(),
    u64: () => Buffer.from(take(8)).readBigUInt64BE(),
    varBytes: () => take(Buffer.from(take(4)).readUInt32BE()),
    rest: () => bytes.length - at,
  };
}

function modPow(b, e, m) {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

function inverse(a, m) {
  let [r0, r1, s0, s1] = [((a % m) + m) % m, m, 1n, 0n];
  while (r1) {
    const q = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error("not invertible");
  return ((s0 % m) + m) % m;
}

function readMechanism(r) {
  const tag = r.u8();
  if (tag !== 0) {
    r.varBytes();
    r.varBytes();
  }
}

/** Decrypts a Paillier aggregate file with a secret key file; returns the
 * measurement's values (sums plus noise) as bigints. */
export async function decryptAggregate(secretKeyFile, aggregateFile, measurementText) {
  const k = reader(secretKeyFile);
  const hdr = Buffer.from(k.take(7)).toString("hex");
  if (hdr !== "48544c59010201") throw new Error("not a Paillier secret key file");
  const bits = k.u16();
  const p = big(k.take(bits / 16));
  const q = big(k.take(bits / 16));
  k.take(bits / 8);
  if (k.rest() !== 0) throw new Error("trailing bytes in key");
  const n = p * q;
  const n2 = n * n;
  const lambda = (p - 1n) * (q - 1n);
  const mu = inverse(lambda % n, n);

  const a = reader(aggregateFile);
  const magic = Buffer.from(a.take(4)).toString("hex");
  const version = a.u8();
  if (magic !== "48544c59" || a.u8() !== 3 || (version !== 1 && version !== 2)) throw new Error("not an aggregate");
  if (a.u8() !== 1) throw new Error("not Paillier");
  a.take(64);
  const tag = a.u8();
  let len;
  if (tag === 1) len = 1;
  else if (tag === 2) (len = 1), a.u32();
  else if (tag === 3) len = a.u32();
  else (len = a.u32()), a.u32();
  if (a.u8() !== 1) throw new Error("not a Paillier encoding");
  const w = a.u32();
  a.u64();
  a.u64();
  if (version === 2) a.u8();
  a.u64();
  readMechanism(a);
  const count = a.u32();
  const slots = Math.floor((bits - 2) / w);
  if (count !== Math.ceil(len / slots)) throw new Error("wrong ciphertext count");
  const out = [];
  const W = BigInt(w);
  const M = 1n << W;
  for (let j = 0; j < count; j++) {
    const c = big(a.varBytes());
    let m = (((modPow(c, lambda, n2) - 1n) / n) * mu) % n;
    let P = m > n / 2n ? m - n : m;
    for (let t = 0; t < Math.min(slots, len - j * slots); t++) {
      const low = ((P % M) + M) % M;
      const v = low < M / 2n ? low : low - M;
      out.push(v);
      P = (P - v) / M;
    }
    if (P !== 0n) throw new Error("slot overflow");
  }
  if (a.rest() !== 0) throw new Error("trailing bytes in aggregate");
  if (measurementText && out.length !== len) throw new Error("length");
  return out;
}
