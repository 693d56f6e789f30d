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

/** A version-3 Paillier definition (7.2) from its fields; `tail` follows
 * the relation byte (trustee noise: contributors, honest). */
function definition({ measurement, max, dp = [0], budget = [0], slotBits, proofs = 1, relation = 2, key = publicKey, tail = [], version = 3 }) {
  return Uint8Array.from([
    version, ...measurement, ...u64(1), ...u64(max), ...u64(3600), ...dp, ...budget,
    1, ...u32(key.length), ...key, ...u32(slotBits), proofs, ...(version === 3 ? [relation] : []), ...tail,
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

// ---- Trustee noise (version 3, flags bit 1: contributors, honest) --------

const thresholdCase = JSON.parse(readFileSync(new URL("../../../test-vectors/v1/task-ids.json", import.meta.url)))
  .cases.find((c) => c.name.includes("3-of-5 threshold key"));
const thresholdDefinition = hexToBytes(thresholdCase.definition);
const thresholdKey = hetally.decodeDefinition(thresholdDefinition).publicKey;

/** The fewest big-endian bytes of v (at least one). */
const magnitude = (v) => { const b = []; let x = BigInt(v); do { b.unshift(Number(x & 255n)); x >>= 8n; } while (x > 0n); return b; };
/** A rational (5.1) of any size; the caller passes it in lowest terms. */
const bigRational = (n, d) => { const a = magnitude(n); const b = magnitude(d); return [...u32(a.length), ...a, ...u32(b.length), ...b]; };

// An independent slot width (5.3, 5.4, 9.2) of a replace-one histogram task
// (L2^2 = 2, max value 1) with gaussian rho = 1/rhoDen and trustee noise.
const sqrtFloor = (x) => { if (x < 2n) return x; let r = x, y = (x + 1n) / 2n; while (y < r) { r = y; y = (y + x / y) / 2n; } return r; };
const sqrtCeil = (x) => { const r = sqrtFloor(x); return r * r === x ? r : r + 1n; };
const divCeil = (a, b) => (a + b - 1n) / b;
const bitLength = (x) => x.toString(2).length;
function expectedSlotBits({ rhoDen, contributors, honest, max }) {
  // sigma^2 = L2^2 / (2 rho) = rhoDen; the share's variance rhoDen / honest.
  const [vn, vd] = [BigInt(rhoDen), BigInt(honest)];
  let sn, sd; // share = sn / sd
  if (sqrtFloor(vn) ** 2n === vn && sqrtFloor(vd) ** 2n === vd) {
    [sn, sd] = [sqrtFloor(vn), sqrtFloor(vd)];
  } else {
    // ~10 significant digits, rounded up: sd = 10^p with p = 9 - floor(log10 share).
    const mag = Math.floor(Math.log10(Math.sqrt(Number(vn) / Number(vd))));
    sd = 10n ** BigInt(Math.max(9 - mag, 0));
    sn = sqrtCeil(divCeil(vn * sd * sd, vd));
  }
  // (t+1)^2 >= 2 * contributors * share^2 * 65 * ln2_upper
  const x = divCeil(2n * BigInt(contributors) * sn * sn * 65n * 6931471805599454n, sd * sd * 10n ** 16n);
  const t = sqrtCeil(x) - 1n;
  return bitLength(BigInt(max) + t) + 2;
}

/** A trustee-noise definition under the vector's 3-of-5 key. */
function trusteeDefinition({ rhoDen = 2 ** 40, contributors = 3, honest = 2, max = 1000, slotBits, ...rest }) {
  const fields = {
    measurement: [3, ...u32(16)], max, dp: [2, ...bigRational(1, rhoDen)], budget: [1, ...rational(1, 1)],
    proofs: 3, key: thresholdKey, tail: [contributors, honest], ...rest,
  };
  fields.slotBits = slotBits ?? expectedSlotBits({ rhoDen, contributors, honest, max });
  return definition(fields);
}

test("the threshold vector is the test's own encoding with dp none", () => {
  // Same fields, no trustee noise: the helper rebuilds the vector byte for
  // byte, so the trustee definitions below differ from it only where meant.
  const rebuilt = definition({ measurement: [3, ...u32(16)], max: 1000000, slotBits: 22, key: thresholdKey });
  assert.deepEqual(rebuilt, thresholdDefinition);
  assert.equal(hetally.decodeDefinition(thresholdDefinition).trusteeNoise, null);
});

test("a trustee-noise definition is accepted with its fields and slot width", async () => {
  // The vector itself with dp none -> gaussian 1/2^40, budget 1, flags 03,
  // two more bytes after the relation, and the slot width re-derived.
  const vectorBytes = [...thresholdDefinition];
  const dpAt = 1 + 5 + 24;
  assert.deepEqual(vectorBytes.slice(dpAt, dpAt + 3), [0, 0, 1]); // dp none, no budget, Paillier
  const slotAt = vectorBytes.length - 6;
  const expected = expectedSlotBits({ rhoDen: 2 ** 40, contributors: 3, honest: 2, max: 1000000 });
  const modified = Uint8Array.from([
    ...vectorBytes.slice(0, dpAt), 2, ...bigRational(1, 2 ** 40), 1, ...rational(1, 1),
    ...vectorBytes.slice(dpAt + 2, slotAt), ...u32(expected), 3, 2, 3, 2,
  ]);
  const task = await PaillierTask.fromDefinition(modified);
  assert.deepEqual(task.definition.trusteeNoise, { contributors: 3, honest: 2 });
  assert.deepEqual(task.trusteeNoise, { contributors: 3, honest: 2 });
  assert.equal(task.slotBits, expected);
  assert.equal(task.definition.inputProofs, true);
  assert.equal(task.definition.relation, "replace-one");

  // sigma^2 = 2^40: server noise has t = ceil_sqrt(2^41 * 65 ln2) - 1
  // (a 24-bit tail, so w = 26 for max batch 1000); 5 contributors of
  // which 1 is honest draw 5 shares of sigma 2^20, a 25-bit tail: w = 27.
  assert.equal(expectedSlotBits({ rhoDen: 2 ** 40, contributors: 1, honest: 1, max: 1000 }), 26);
  assert.equal(expectedSlotBits({ rhoDen: 2 ** 40, contributors: 5, honest: 1, max: 1000 }), 27);
  const cases = [
    { contributors: 5, honest: 1 }, // exact share 2^20
    { contributors: 5, honest: 4 }, // exact share 2^19
    { contributors: 5, honest: 5 }, // share rounded up at 10 digits
    { contributors: 3, honest: 2 }, // share rounded up at 10 digits
    { contributors: 1, honest: 1 },
    { contributors: 4, honest: 3, rhoDen: 8 }, // small noise: sigma^2 = 8
    { contributors: 2, honest: 1, rhoDen: 2 ** 100 },
  ];
  for (const c of cases) {
    const t = await PaillierTask.fromDefinition(trusteeDefinition(c));
    assert.deepEqual(t.trusteeNoise, { contributors: c.contributors, honest: c.honest }, JSON.stringify(c));
    assert.equal(t.slotBits, expectedSlotBits({ rhoDen: 2 ** 40, max: 1000, ...c }), JSON.stringify(c));
  }
  // The same task with the server's noise has 26-bit slots, and the
  // trustee task's stated width must be its own.
  const plain = await PaillierTask.fromDefinition(
    definition({ measurement: [3, ...u32(16)], max: 1000, dp: [2, ...bigRational(1, 2 ** 40)], budget: [1, ...rational(1, 1)], slotBits: 26, key: thresholdKey }),
  );
  assert.equal(plain.trusteeNoise, null);
  await assert.rejects(
    PaillierTask.fromDefinition(trusteeDefinition({ contributors: 5, honest: 1, slotBits: 26 })),
    (err) => err instanceof InvalidTaskError && /derive 27/.test(err.message),
  );
  // Input proofs (bit 0) are independent of bit 1.
  const noProofs = await PaillierTask.fromDefinition(trusteeDefinition({ proofs: 2 }));
  assert.equal(noProofs.definition.inputProofs, false);
  assert.deepEqual(noProofs.trusteeNoise, { contributors: 3, honest: 2 });
  // contributors = N is allowed.
  assert.deepEqual((await PaillierTask.fromDefinition(trusteeDefinition({ contributors: 5, honest: 3 }))).trusteeNoise, { contributors: 5, honest: 3 });
});

test("trustee-noise definitions that break a rule are refused", async () => {
  const good = trusteeDefinition({});
  const laplace = { dp: [1, ...rational(1, 1)], budget: [1, ...rational(1, 1)] };
  const bad = {
    "honest = 0": [trusteeDefinition({ honest: 0, slotBits: 30 }), /honest/],
    "honest > contributors": [trusteeDefinition({ contributors: 2, honest: 3 }), /honest/],
    "contributors > N": [trusteeDefinition({ contributors: 6, honest: 1 }), /trustees/],
    "contributors 255 > N": [trusteeDefinition({ contributors: 255, honest: 1 }), /trustees/],
    "dp laplace": [trusteeDefinition({ ...laplace, slotBits: 20 }), /Gaussian/],
    "dp none": [trusteeDefinition({ dp: [0], budget: [0], slotBits: 20 }), /Gaussian/],
    "add-remove": [trusteeDefinition({ relation: 1, slotBits: 30 }), /replace-one/],
    "a key that is not a threshold key": [trusteeDefinition({ key: publicKey, slotBits: 27 }), /threshold/],
    "flag bit 2 (value 4) with bit 1": [trusteeDefinition({ proofs: 7 }), /flags byte 7/],
    "flag bit 2 (value 4) alone": [trusteeDefinition({ proofs: 4, tail: [] }), /flags byte 4/],
    "a trailing byte": [Uint8Array.from([...good, 0]), /after|trailing|byte/],
    "honest missing": [good.subarray(0, good.length - 1), /honest|truncat|short|end/],
    "both bytes missing": [good.subarray(0, good.length - 2), /contributor|truncat|short|end/],
    "version 2 with flags 03": [trusteeDefinition({ version: 2, proofs: 3, tail: [] }), /flags byte 3/],
  };
  await PaillierTask.fromDefinition(good);
  for (const [what, [def, message]] of Object.entries(bad)) {
    await assert.rejects(PaillierTask.fromDefinition(def), (err) => err instanceof InvalidTaskError && message.test(err.message), what);
  }
  // The flag's bytes are read only with the flag: without it they are trailing.
  await assert.rejects(PaillierTask.fromDefinition(trusteeDefinition({ proofs: 1 })), InvalidTaskError);
});
