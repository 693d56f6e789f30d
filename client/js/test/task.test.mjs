// Task definitions (docs/protocol.md 7.2, 7.3, 9.2): the worked examples of
// the slot width, and definitions a client must refuse.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as hetally from "../dist/hetally.mjs";

const { hexToBytes, PaillierTask, InvalidTaskError } = hetally;
const vector = JSON.parse(readFileSync(new URL("../../../test-vectors/v1/reports/paillier-count.json", import.meta.url)));
const publicKey = hexToBytes(vector.public_key);

const u32 = (v) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const u64 = (v) => { const b = []; let x = BigInt(v); for (let i = 0; i < 8; i++) { b.unshift(Number(x & 255n)); x >>= 8n; } return b; };
const rational = (n, d) => [...u32(1), n, ...u32(1), d];

/** A version-3 Paillier definition (7.2) from its fields. */
function definition({ measurement, max, dp = [0], budget = [0], slotBits, proofs = 1, relation = 2, key = publicKey }) {
  return Uint8Array.from([
    3, ...measurement, ...u64(1), ...u64(max), ...u64(3600), ...dp, ...budget,
    1, ...u32(key.length), ...key, ...u32(slotBits), proofs, relation,
  ]);
}

test("the worked examples of 9.2 derive their slot widths", async () => {
  const hist11 = await PaillierTask.fromDefinition(definition({ measurement: [3, ...u32(11)], max: 4294967295, slotBits: 34 }));
  assert.equal(hist11.k, 60);
  assert.equal(hist11.plaintexts, 1);
  const hist100 = await PaillierTask.fromDefinition(definition({ measurement: [3, ...u32(100)], max: 4294967295, slotBits: 34, proofs: 0 }));
  assert.equal(hist100.plaintexts, 2);
  const laplace = { dp: [1, ...rational(1, 1)], budget: [1, ...rational(1, 1)] };
  await PaillierTask.fromDefinition(definition({ measurement: [1], max: 1000, slotBits: 13, ...laplace }));
  const gaussian = { dp: [2, ...rational(1, 8)], budget: [1, ...rational(1, 1)] };
  await PaillierTask.fromDefinition(definition({ measurement: [1], max: 1000, slotBits: 12, ...gaussian }));
  // Without DP the same count task has 12-bit slots, and 13 is refused.
  await PaillierTask.fromDefinition(definition({ measurement: [1], max: 1000, slotBits: 12 }));
  await assert.rejects(
    PaillierTask.fromDefinition(definition({ measurement: [1], max: 1000, slotBits: 13 })),
    (err) => err instanceof InvalidTaskError && /derive 12/.test(err.message),
  );
});

test("definitions that break a rule of 7.2 are refused", async () => {
  const good = { measurement: [1], max: 1000, slotBits: 12 };
  await PaillierTask.fromDefinition(definition(good));
  const bad = {
    "a trailing byte": Uint8Array.from([...definition(good), 0]),
    "a truncated definition": definition(good).subarray(0, 100),
    "version 4": Uint8Array.from([4, ...definition(good).subarray(1)]),
    "a budget without DP": definition({ ...good, budget: [1, ...rational(1, 1)] }),
    "DP without a budget": definition({ ...good, dp: [1, ...rational(1, 1)], slotBits: 13 }),
    "add-remove without DP": definition({ ...good, relation: 1 }),
    "relation 3": definition({ ...good, relation: 3 }),
    "flags 2": definition({ ...good, proofs: 2 }),
    "an unreduced epsilon": definition({ ...good, dp: [1, ...rational(2, 2)], budget: [1, ...rational(1, 1)], slotBits: 13 }),
    "sum:63": definition({ ...good, measurement: [2, ...u32(63)] }),
    "histogram:1": definition({ ...good, measurement: [3, ...u32(1)] }),
    "a public key with a trailing byte": definition({ ...good, key: Uint8Array.from([...publicKey, 0]) }),
    "an even modulus": definition({ ...good, key: Uint8Array.from(publicKey, (b, i) => (i === 264 ? b & 0xfe : b)) }),
    "h = 1": definition({ ...good, key: Uint8Array.from(publicKey, (b, i) => (i < 265 ? b : i === 520 ? 1 : 0)) }),
  };
  for (const [what, def] of Object.entries(bad)) {
    await assert.rejects(PaillierTask.fromDefinition(def), InvalidTaskError, what);
  }
});
