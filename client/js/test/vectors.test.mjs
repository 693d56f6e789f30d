// Every test vector of test-vectors/v1 (docs/protocol.md section 15):
// task ids, Paillier reports byte for byte from their tapes, TFHE reports
// refused as unsupported, and Paillier aggregates decrypted by a small
// test-only decoder (the SDK itself ships no decryption).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import * as hetally from "../dist/hetally.mjs";
import { decryptAggregate } from "./paillier-decoder.mjs";

const { hexToBytes, bytesToHex, base64urlEncode, taskIdOf, decodeDefinition, PaillierTask, _prepareFromTape } = hetally;
const VECTORS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test-vectors", "v1");
const load = (path) => JSON.parse(readFileSync(join(VECTORS, path), "utf8"));
const files = (folder) => readdirSync(join(VECTORS, folder)).filter((f) => f.endsWith(".json")).sort();

test("the vector folders hold what the protocol lists", () => {
  assert.ok(files("reports").length >= 13, "reports/ is missing files");
  assert.ok(files("aggregates").length >= 6, "aggregates/ is missing files");
});

test("task-ids.json: every definition hashes to its id and decodes", async () => {
  const doc = load("task-ids.json");
  assert.equal(doc.version, 1);
  assert.ok(doc.cases.length > 0);
  for (const c of doc.cases) {
    const def = hexToBytes(c.definition);
    assert.equal(base64urlEncode(await taskIdOf(def)), c.task_id, c.name);
    const decoded = decodeDefinition(def);
    assert.equal(decoded.scheme, c.name.split(" ")[0], c.name);
    if (decoded.scheme === "paillier") {
      // re-derives the slot width (with the DP tail bound) and checks it
      const task = await PaillierTask.fromDefinition(def, hexToBytes(bytesToHex(await taskIdOf(def))));
      assert.equal(task.id, c.task_id);
    } else {
      await assert.rejects(PaillierTask.fromDefinition(def), hetally.UnsupportedTaskError, c.name);
    }
  }
});

for (const name of files("reports")) {
  test(`reports/${name}`, async () => {
    const doc = load(join("reports", name));
    assert.equal(doc.version, 1);
    const def = hexToBytes(doc.definition);
    assert.equal(base64urlEncode(await taskIdOf(def)), doc.task_id);
    assert.equal(bytesToHex(decodeDefinition(def).publicKey), doc.public_key);
    if (doc.scheme === "tfhe") {
      // TFHE reports need TFHE-rs 1.8's generators (protocol 15.3); this SDK
      // refuses TFHE tasks outright.
      await assert.rejects(PaillierTask.fromDefinition(def), {
        name: "UnsupportedTaskError",
        message: "TFHE tasks are not supported in this SDK",
      });
      return;
    }
    const task = await PaillierTask.fromDefinition(def);
    assert.equal(task.definition.inputProofs, doc.input_proofs);
    assert.equal(task.definition.measurement.text, doc.measurement);
    for (const [i, c] of doc.cases.entries()) {
      const tape = hexToBytes(c.randomness);
      const report = await _prepareFromTape(task, c.values, c.time, tape);
      assert.equal(bytesToHex(report.bytes), c.report, `case ${i}: report differs`);
      assert.equal(report.id, base64urlEncode(hexToBytes(c.report_id)));
      assert.equal(report.time, c.report_time);
      // The tape must be used exactly.
      await assert.rejects(_prepareFromTape(task, c.values, c.time, tape.subarray(0, tape.length - 1)), /too short/);
      const longer = new Uint8Array(tape.length + 1);
      longer.set(tape);
      await assert.rejects(_prepareFromTape(task, c.values, c.time, longer), /left over/);
    }
  });
}

for (const name of files("aggregates")) {
  test(`aggregates/${name}`, async () => {
    const doc = load(join("aggregates", name));
    const def = hexToBytes(doc.definition);
    assert.equal(base64urlEncode(await taskIdOf(def)), doc.task_id);
    if (doc.scheme === "tfhe") {
      // Decrypting TFHE is out of this SDK's scope; the definition still hashes.
      assert.equal(decodeDefinition(def).scheme, "tfhe");
      return;
    }
    const values = await decryptAggregate(hexToBytes(doc.secret_key), hexToBytes(doc.aggregate), doc.measurement);
    assert.deepEqual(values, doc.values.map(BigInt));
  });
}
