// Uploads against a tiny local HTTP stub: 429 with Retry-After is waited
// for and the same bytes are sent again; 5xx and network errors are
// retried with backoff; other 4xx are never retried; Retry-After parses
// delay-seconds and HTTP-dates.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import * as hetally from "../dist/hetally.mjs";

const vector = JSON.parse(readFileSync(new URL("../../../test-vectors/v1/reports/paillier-count.json", import.meta.url)));
const definition = hetally.hexToBytes(vector.definition);
const taskId = vector.task_id;

// Answers for PUT, taken in order; GET /tasks/{id} serves the vector's task.
let answers = [];
let bodies = [];
let stub;
let url;
before(async () => {
  stub = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "GET" && req.url === `/tasks/${taskId}`) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ task_id: taskId, definition: hetally.base64urlEncode(definition) }));
        return;
      }
      bodies.push({ type: req.headers["content-type"], body: Buffer.concat(chunks) });
      const [status, headers, problem] = answers.shift() ?? [500, {}, "internal"];
      if (status === "drop") {
        req.socket.destroy();
        return;
      }
      const body = problem
        ? JSON.stringify({ type: `urn:hetally:error:${problem}`, title: "x", status, detail: `stub says ${problem}` })
        : "";
      res.writeHead(status, { ...(problem ? { "Content-Type": "application/problem+json" } : {}), ...headers });
      res.end(body);
    });
  });
  await new Promise((ok) => stub.listen(0, "127.0.0.1", ok));
  url = `http://127.0.0.1:${stub.address().port}/`;
});
after(() => stub.close());

const fast = { baseDelayMs: 10, maxDelayMs: 50 };

test("a 429 with Retry-After is waited for, and the same bytes are resent", async () => {
  const client = await hetally.connect(url, taskId, fast);
  answers = [[429, { "Retry-After": "1" }, "tooManyRequests"], [201, {}, null]];
  bodies = [];
  const t0 = Date.now();
  const id = await client.send(1);
  const waited = Date.now() - t0;
  assert.ok(waited >= 1000, `waited only ${waited} ms`);
  assert.ok(waited < 2500, `waited ${waited} ms, more than twice Retry-After`);
  assert.equal(bodies.length, 2);
  assert.deepEqual(bodies[0].body, bodies[1].body);
  assert.equal(bodies[0].type, "application/vnd.hetally.report");
  assert.equal(hetally.base64urlEncode(bodies[0].body.subarray(1, 17)), id);
});

test("5xx, 408 and dropped connections are retried; reportReplayed on a retry is success", async () => {
  const client = await hetally.connect(url, taskId, fast);
  answers = [[503, {}, null], ["drop"], [408, {}, null], [409, {}, "reportReplayed"]];
  bodies = [];
  await client.send(0);
  assert.equal(bodies.length, 4);
  assert.ok(bodies.every((b) => b.body.equals(bodies[0].body)));
});

test("other 4xx are never retried", async () => {
  const client = await hetally.connect(url, taskId, fast);
  answers = [[400, {}, "invalidProof"], [201, {}, null]];
  bodies = [];
  await assert.rejects(client.send(1), (err) => {
    assert.ok(err instanceof hetally.ServerError);
    assert.equal(err.problem, "invalidProof");
    assert.equal(err.detail, "stub says invalidProof");
    return true;
  });
  assert.equal(bodies.length, 1);
  answers = [];
});

test("giving up after maxAttempts surfaces the last answer", async () => {
  const client = await hetally.connect(url, taskId, { ...fast, maxAttempts: 3 });
  answers = [[500, {}, "internal"], [500, {}, "internal"], [503, { "Retry-After": "0" }, null], [201, {}, null]];
  bodies = [];
  await assert.rejects(client.send(1), (err) => err instanceof hetally.ServerError && err.status === 503 && err.retryAfter === 0);
  assert.equal(bodies.length, 3);
  answers = [];
});

test("an unreachable server is UnreachableError", async () => {
  // A port nobody listens on: bind one and close it.
  const s = createServer();
  await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
  const port = s.address().port;
  await new Promise((ok) => s.close(ok));
  await assert.rejects(hetally.connect(`http://127.0.0.1:${port}`, taskId, { ...fast, maxAttempts: 2 }), hetally.UnreachableError);
});

test("Retry-After: delay-seconds and HTTP-date", () => {
  const now = Date.parse("Mon, 07 Dec 2026 13:00:00 GMT");
  assert.equal(hetally.parseRetryAfter("7", now), 7);
  assert.equal(hetally.parseRetryAfter("Mon, 07 Dec 2026 13:00:30 GMT", now), 30);
  assert.equal(hetally.parseRetryAfter("Mon, 07 Dec 2026 12:00:00 GMT", now), 0);
  assert.equal(hetally.parseRetryAfter("soon", now), null);
  assert.equal(hetally.parseRetryAfter(null, now), null);
});

test("a malformed task id is refused before any request", async () => {
  for (const bad of ["", "A".repeat(42), "A".repeat(43) + "=", "A".repeat(42) + "B", " " + "A".repeat(42)]) {
    await assert.rejects(hetally.connect(url, bad), hetally.HetallyError, JSON.stringify(bad));
  }
});

test("a task whose JSON members contradict its definition is refused", async () => {
  const contradicting = async (u, init) => {
    const info = await (await fetch(u, init)).json();
    info.measurement = "histogram:4";
    return new Response(JSON.stringify(info), { status: 200, headers: { "Content-Type": "application/json" } });
  };
  await assert.rejects(hetally.connect(url, taskId, { fetch: contradicting }), (err) => {
    assert.ok(err instanceof hetally.InvalidTaskError);
    assert.match(err.message, /measurement is "histogram:4", but its definition says "count"/);
    return true;
  });
});
