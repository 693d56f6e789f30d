// Threshold TFHE public keys (docs/protocol.md 6.10): kind 04, scheme 02,
// the TFHE public key body of 6.5, then u16 trustees (2..=64) and u8
// min_lambda (0..=40), nothing after. The SDK refuses TFHE tasks, but it
// still decodes their definitions (7.2) and checks their keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as hetally from "../dist/hetally.mjs";

const { decodeDefinition, PaillierTask, InvalidTaskError, UnsupportedTaskError } = hetally;

const u16 = (v) => [v >>> 8, v & 255];
const u32 = (v) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const u64 = (v) => { const b = []; let x = BigInt(v); for (let i = 0; i < 8; i++) { b.unshift(Number(x & 255n)); x >>= 8n; } return b; };
const rational = (n, d) => [...u32(1), n, ...u32(1), d];

/** A TFHE key file (6.5, 6.10): any words will do, only the length is checked. */
function tfheKey({ kind = 4, trustees = 3, minLambda = 16, tail = null } = {}) {
  const body = new Uint8Array(1 + 16 * 2048);
  body[0] = 1; // parameter set 1
  for (let i = 1; i < body.length; i++) body[i] = (i * 131 + 7) & 255;
  const after = tail ?? (kind === 4 ? [...u16(trustees), minLambda] : []);
  return Uint8Array.from([0x48, 0x54, 0x4c, 0x59, 0x01, kind, 0x02, ...body, ...after]);
}

/** A version-3 TFHE definition (7.2, 7.3): Delta 2^52, no CRS, replace-one;
 * `tail` follows the relation byte. The SDK does not derive TFHE layouts. */
function tfheDefinition({ key = tfheKey(), dp = [0], budget = [0], flags = 0, tail = [] } = {}) {
  return Uint8Array.from([
    3, 3, ...u32(16), ...u64(1), ...u64(300), ...u64(3600), ...dp, ...budget,
    2, ...u32(key.length), ...key, 52, 0, flags, 2, ...tail,
  ]);
}

test("a threshold TFHE key is 32,779 bytes and its definition decodes with N", () => {
  assert.equal(tfheKey().length, 32779);
  for (const [trustees, minLambda] of [[3, 16], [2, 0], [64, 40]]) {
    const key = tfheKey({ trustees, minLambda });
    const def = decodeDefinition(tfheDefinition({ key }));
    assert.equal(def.scheme, "tfhe");
    assert.equal(def.trustees, trustees);
    assert.equal(def.paillierKey, null);
    assert.deepEqual(def.publicKey, key);
    assert.equal(def.trusteeNoise, null);
  }
  // A plain TFHE key (kind 1) has no trustees.
  const plain = decodeDefinition(tfheDefinition({ key: tfheKey({ kind: 1 }) }));
  assert.equal(plain.scheme, "tfhe");
  assert.equal(plain.trustees, null);
});

test("a task under a threshold TFHE key is still a TFHE task this SDK refuses", async () => {
  await assert.rejects(PaillierTask.fromDefinition(tfheDefinition()), (err) =>
    err instanceof UnsupportedTaskError && err.message === "TFHE tasks are not supported in this SDK");
});

test("threshold TFHE keys that break a rule of 6.10 are refused", () => {
  const good = tfheKey();
  const bad = {
    "N = 1": [tfheKey({ trustees: 1 }), /trustees = 1 is not allowed/],
    "N = 0": [tfheKey({ trustees: 0 }), /trustees = 0 is not allowed/],
    "N = 65": [tfheKey({ trustees: 65 }), /trustees = 65 is not allowed/],
    "min_lambda = 41": [tfheKey({ minLambda: 41 }), /min_lambda = 41 is not allowed/],
    "min_lambda = 255": [tfheKey({ minLambda: 255 }), /min_lambda = 255 is not allowed/],
    "min_lambda missing": [good.subarray(0, good.length - 1), /truncated: min_lambda/],
    "N and min_lambda missing": [good.subarray(0, good.length - 3), /truncated: the trustee count/],
    "a truncated polynomial": [good.subarray(0, 1000), /truncated: the TFHE public key polynomials/],
    "a trailing byte": [Uint8Array.from([...good, 0]), /public key file has 1 trailing bytes/],
    "a kind-1 key with N and min_lambda after it": [tfheKey({ kind: 1, tail: [0, 3, 16] }), /public key file has 3 trailing bytes/],
    "parameter set 2": [Uint8Array.from(good, (b, i) => (i === 7 ? 2 : b)), /parameter set 2/],
  };
  for (const [what, [key, message]] of Object.entries(bad)) {
    assert.throws(() => decodeDefinition(tfheDefinition({ key })), (err) => err instanceof InvalidTaskError && message.test(err.message), what);
  }
});

test("a threshold TFHE key does not allow trustee noise", () => {
  // Gaussian, replace-one, flags 02 and (contributors, honest) = (2, 1):
  // everything trustee noise needs but a Paillier threshold key (7.2).
  const gaussian = { dp: [2, ...rational(1, 8)], budget: [1, ...rational(1, 1)] };
  for (const key of [tfheKey({ trustees: 3 }), tfheKey({ trustees: 64 }), tfheKey({ kind: 1 })]) {
    assert.throws(
      () => decodeDefinition(tfheDefinition({ key, ...gaussian, flags: 2, tail: [2, 1] })),
      (err) => err instanceof InvalidTaskError && err.message === "trustee noise needs a Paillier threshold key",
    );
  }
  // Without the flag the same task decodes.
  assert.equal(decodeDefinition(tfheDefinition({ ...gaussian })).trustees, 3);
});

test("a threshold TFHE key is refused in a definition that says Paillier", () => {
  const paillierByte = Uint8Array.from(tfheDefinition());
  paillierByte[1 + 5 + 24 + 2] = 1; // the scheme byte after dp none and no budget
  assert.throws(() => decodeDefinition(paillierByte), (err) => err instanceof InvalidTaskError && /scheme differs/.test(err.message));
});
