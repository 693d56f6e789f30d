// End to end from Node against a real hetally-server: the SDK connects,
// encrypts, proves and uploads; the collector releases with hetally-client
// and decrypts with hetally-keytool; the sums are exact. Also the server's
// refusals: a tampered proof, a report from the future, a substituted task.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as hetally from "../dist/hetally.mjs";
import { Server, batchTime, PRECISION } from "./server.mjs";
import { decryptAggregate } from "./paillier-decoder.mjs";

let server;
before(async () => {
  server = await Server.start();
});
after(() => server?.stop());

// A deterministic sequence of values, so that a failure can be replayed.
function values(count, modulo, seed) {
  const out = [];
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    out.push(x % modulo);
  }
  return out;
}

test("count with input proofs: 20 reports, exact", async () => {
  const { taskId, token } = server.createTask("count");
  const client = await hetally.connect(server.url, taskId);
  assert.equal(client.measurement, "count");
  assert.ok(client.inputProofs);
  assert.equal(client.uploadUrl, `${server.url}/tasks/${taskId}/reports`);
  const t = batchTime();
  const vs = values(20, 2, 7);
  const ids = new Set();
  for (const v of vs) ids.add(await client.send(v, t));
  assert.equal(ids.size, 20);
  const { decrypted, file } = server.collect(taskId, token, t);
  const sum = vs.reduce((a, b) => a + b, 0);
  assert.deepEqual(decrypted.values, [sum]);
  assert.equal(decrypted.report_count, 20);
  // The test-only decoder agrees with hetally-keytool.
  assert.deepEqual(await decryptAggregate(readFileSync(server.sk), file, "count"), [BigInt(sum)]);
});

test("histogram:4 with input proofs: 10 reports in every input form, exact", async () => {
  const { taskId, token } = server.createTask("histogram:4");
  const client = await hetally.connect(server.url, taskId);
  const t = batchTime();
  const truth = [0, 0, 0, 0];
  for (const [i, bucket] of values(10, 4, 11).entries()) {
    truth[bucket] += 1;
    const forms = [bucket, String(bucket), [0, 1, 2, 3].map((b) => (b === bucket ? 1 : 0)), BigInt(bucket)];
    await client.send(forms[i % forms.length], t);
  }
  assert.deepEqual(server.collect(taskId, token, t).decrypted.values, truth);
});

test("sumvec:3:4 with input proofs and sum:8 without, exact", async () => {
  const vec = server.createTask("sumvec:3:4");
  const sum = server.createTask("sum:8", "--no-input-proofs");
  const cv = await hetally.connect(server.url, vec.taskId);
  const cs = await hetally.connect(server.url, sum.taskId);
  assert.ok(cv.inputProofs);
  assert.ok(!cs.inputProofs);
  const t = batchTime();
  await cv.send([3, 0, 15], t);
  await cv.send("1,2,3", t);
  await cv.send([0n, 7n, 1n], t);
  for (const v of [255, 0, 17, "3"]) await cs.send(v, t);
  assert.deepEqual(server.collect(vec.taskId, vec.token, t).decrypted.values, [4, 9, 19]);
  assert.deepEqual(server.collect(sum.taskId, sum.token, t).decrypted.values, [275]);
});

test("prepare gives bytes that a plain PUT uploads", async () => {
  const { taskId, token } = server.createTask("count");
  const client = await hetally.connect(server.url, taskId);
  const t = batchTime();
  const report = await client.prepare(1, t + 5);
  assert.equal(report.time, t);
  assert.equal(report.id.length, 22);
  const res = await fetch(client.uploadUrl, {
    method: "PUT",
    headers: { "Content-Type": client.mediaType },
    body: report.bytes,
  });
  assert.equal(res.status, 201);
  assert.deepEqual(server.collect(taskId, token, t).decrypted.values, [1]);
});

test("a tampered proof is refused with 400 invalidProof", async () => {
  const { taskId } = server.createTask("count");
  const client = await hetally.connect(server.url, taskId);
  const report = await client.prepare(1);
  // The last byte is the low byte of z1_0 (protocol 9.4).
  report.bytes[report.bytes.length - 1] ^= 1;
  await assert.rejects(client.upload(report), (err) => {
    assert.ok(err instanceof hetally.ServerError);
    assert.equal(err.status, 400);
    assert.equal(err.problem, "invalidProof");
    assert.equal(err.problemType, "urn:hetally:error:invalidProof");
    return true;
  });
});

test("a report from the future surfaces as reportTooEarly and is not retried", async () => {
  const { taskId } = server.createTask("count");
  let calls = 0;
  const client = await hetally.connect(server.url, taskId, {
    fetch: (url, init) => {
      calls += 1;
      return fetch(url, init);
    },
  });
  calls = 0;
  const future = Math.floor(Date.now() / 1000) + 10 * PRECISION;
  await assert.rejects(client.send(1, future), (err) => {
    assert.ok(err instanceof hetally.ServerError);
    assert.equal(err.status, 400);
    assert.equal(err.problem, "reportTooEarly");
    return true;
  });
  assert.equal(calls, 1);
});

test("a substituted definition (another task's) is refused at connect", async () => {
  const a = server.createTask("count");
  const b = server.createTask("count");
  // The server (or someone on the path) answers task A with task B.
  const lying = (url, init) => fetch(String(url).replace(a.taskId, b.taskId), init);
  await assert.rejects(hetally.connect(server.url, a.taskId, { fetch: lying }), hetally.TaskMismatchError);
  // An unknown task is the server's 404.
  await assert.rejects(hetally.connect(server.url, "A".repeat(43)), (err) => {
    assert.ok(err instanceof hetally.ServerError);
    assert.equal(err.status, 404);
    assert.equal(err.problem, "unrecognizedTask");
    return true;
  });
});

test("invalid measurements are refused before anything is sent", async () => {
  const { taskId } = server.createTask("histogram:4");
  const client = await hetally.connect(server.url, taskId);
  for (const bad of [4, -1, [1, 1, 0, 0], [0, 0, 0, 0], "x", [1, 0, 0], 1.5]) {
    await assert.rejects(client.send(bad), hetally.InvalidMeasurementError, String(bad));
  }
});
