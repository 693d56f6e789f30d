// The SDK in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a real hetally-server on loopback.
//
// The page and the bundle (dist/hetally.min.js) are served by a small
// static server on another loopback port, so every request of the page to
// hetally-server is cross-origin: the server is started with
// --cors-origin set to the page's origin. In the page:
//
// * uploads to a count task and a histogram:4 task, both with input
//   proofs; the batches are collected with hetally-client and decrypted
//   with hetally-keytool, and must equal exactly what the page sent;
// * a report prepared in the page, with one byte of its proof flipped, is
//   refused with 400 invalidProof (and the same report untampered is then
//   accepted);
// * a page on an origin the server does not list cannot even connect;
// * the median time of prepare() for count and histogram:16 with proofs,
//   printed (BENCHMARKS.md records them).
//
// Needs: the workspace's debug binaries ($HETALLY_BIN_DIR, else
// $CARGO_TARGET_DIR/debug, else target/debug), the bundle
// (npm --prefix client/js run build), this folder's packages
// (npm ci --prefix client/js/test/browser) and /usr/bin/chromium
// (apt-get install chromium), or $CHROMIUM.
//
// Run: node --test client/js/test/browser/

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { BUNDLE, serveFiles } from '../../demo/serve.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..', '..', '..');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIME_PRECISION = 60;
const run = promisify(execFile);

/** The workspace's debug binaries, as client/python/tests/conftest.py finds them. */
function binDir() {
  if (process.env.HETALLY_BIN_DIR) return process.env.HETALLY_BIN_DIR;
  return join(process.env.CARGO_TARGET_DIR ?? join(REPO, 'target'), 'debug');
}

function bin(name) {
  const path = join(binDir(), name);
  if (!existsSync(path)) {
    throw new Error(
      `${path} is missing: build the binaries (cargo build --workspace --bins) or set HETALLY_BIN_DIR`,
    );
  }
  return path;
}

/** Runs a workspace binary; its stdout, or an error with its stderr. */
async function cli(name, args) {
  try {
    const { stdout } = await run(bin(name), args, { maxBuffer: 16 << 20 });
    return stdout;
  } catch (e) {
    throw new Error(`${name} ${args.join(' ')} failed (${e.code}):\n${e.stderr ?? e.message}`);
  }
}

/** Starts hetally-server; resolves once it prints its URL. */
function startServer(dir, extra) {
  const log = openSync(join(dir, 'server.log'), 'w');
  const child = spawn(
    bin('hetally-server'),
    ['--data-dir', join(dir, 'data'), '--listen', '127.0.0.1:0', '--workers', '2', ...extra],
    { stdio: ['ignore', 'pipe', log] },
  );
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error('hetally-server did not start in 30 s')), 30_000);
    const early = (code) => {
      clearTimeout(timer);
      reject(
        new Error(`hetally-server exited (${code}):\n${readFileSync(join(dir, 'server.log'), 'utf8')}`),
      );
    };
    child.once('exit', early);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      child.off('exit', early);
      const url = /listening on (http:\/\/\S+)/.exec(line)?.[1];
      if (!url) reject(new Error(`unexpected first line of hetally-server: ${line}`));
      else resolvePromise({ url, child });
    });
  });
}

/**
 * Creates a task with input proofs; its id and collector token file. A task
 * id is the hash of the definition, so tasks of one measurement differ in
 * `minBatch`.
 */
async function createTask(server, dir, pk, measurement, name, minBatch = 1) {
  const tokenFile = join(dir, `${name}.token`);
  const out = await cli('hetally-client', [
    'task', 'create',
    '--server', server,
    '--admin-token-file', join(dir, 'data', 'admin.token'),
    '--public-key', pk,
    '--measurement', measurement,
    '--min-batch-size', String(minBatch),
    '--time-precision', String(TIME_PRECISION),
    '--token-out', tokenFile,
    '--json',
  ]);
  const task = JSON.parse(out);
  assert.equal(task.input_proofs ?? true, true, `${measurement} task has input proofs`);
  return { id: task.task_id, tokenFile };
}

/** Collects [start, end) (widened to whole time-precision intervals) and decrypts it. */
async function collectAndDecrypt(server, dir, sk, task, startSecs, endSecs, name) {
  const start = Math.floor(startSecs / TIME_PRECISION) * TIME_PRECISION;
  const end = (Math.floor(endSecs / TIME_PRECISION) + 1) * TIME_PRECISION;
  const agg = join(dir, `${name}.agg`);
  await cli('hetally-client', [
    'collect',
    '--server', server,
    '--task', task.id,
    '--token-file', task.tokenFile,
    '--start', String(start),
    '--duration', String(end - start),
    '--out', agg,
  ]);
  return JSON.parse(await cli('hetally-keytool', ['decrypt', '--key', sk, agg, '--format', 'json']));
}

const nowSecs = () => Math.floor(Date.now() / 1000);

describe('the SDK in Chromium, against hetally-server', { timeout: 600_000 }, () => {
  let dir;
  let server;
  let page;
  let strangerPage;
  let browser;
  let browserPage;
  let sk;
  let tasks;

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM)`);
    }
    if (!existsSync(BUNDLE)) {
      throw new Error(`${BUNDLE} is missing: npm --prefix client/js run build`);
    }
    let chromium;
    try {
      ({ chromium } = await import('playwright-core'));
    } catch (e) {
      throw new Error(`playwright-core is missing (${e.message}): npm ci --prefix client/js/test/browser`);
    }
    dir = mkdtempSync(join(tmpdir(), 'hetally-browser-'));
    const html = {
      body: '<!doctype html><meta charset="utf-8"><title>hetally browser test</title>' +
        '<script src="/hetally.min.js"></script>',
      type: 'text/html; charset=utf-8',
    };
    const files = { '/': html, '/hetally.min.js': BUNDLE };
    page = await serveFiles(files);
    // The same page on an origin the server does not list.
    strangerPage = await serveFiles(files);
    server = await startServer(dir, ['--cors-origin', page.url]);
    await cli('hetally-keytool', ['keygen', '--scheme', 'paillier', '--out', join(dir, 'keys')]);
    sk = join(dir, 'keys', 'collector.sk');
    const pk = join(dir, 'keys', 'collector.pk');
    tasks = {
      count: await createTask(server.url, dir, pk, 'count', 'count'),
      histogram: await createTask(server.url, dir, pk, 'histogram:4', 'histogram'),
      tamper: await createTask(server.url, dir, pk, 'count', 'tamper', 2),
      timing: await createTask(server.url, dir, pk, 'count', 'timing', 3),
      timing16: await createTask(server.url, dir, pk, 'histogram:16', 'timing16'),
    };
    browser = await chromium.launch({ executablePath: CHROMIUM });
    browserPage = await browser.newPage();
    const errors = [];
    browserPage.on('pageerror', (e) => errors.push(e));
    await browserPage.goto(`${page.url}/`);
    const loaded = await browserPage.evaluate(() => typeof globalThis.hetally?.connect);
    assert.equal(loaded, 'function', `the bundle defines hetally.connect (page errors: ${errors})`);
  });

  after(async () => {
    await browser?.close();
    server?.child.kill();
    await page?.close();
    await strangerPage?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('reports sent from the page decrypt exactly', async () => {
    const counts = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const buckets = Array.from({ length: 10 }, (_, i) => (i * 7) % 4);
    const started = nowSecs();
    const sent = await browserPage.evaluate(
      async ({ server, count, histogram, counts, buckets }) => {
        const c = await hetally.connect(server, count);
        for (const v of counts) await c.send(v);
        const h = await hetally.connect(server, histogram);
        for (const b of buckets) await h.send(b);
        return counts.length + buckets.length;
      },
      {
        server: server.url,
        count: tasks.count.id,
        histogram: tasks.histogram.id,
        counts,
        buckets,
      },
    );
    const ended = nowSecs();
    assert.equal(sent, 30);

    const count = await collectAndDecrypt(server.url, dir, sk, tasks.count, started, ended, 'count');
    assert.equal(count.report_count, counts.length, JSON.stringify(count));
    assert.deepEqual(count.values, [counts.reduce((a, b) => a + b, 0)], JSON.stringify(count));

    const histogram = await collectAndDecrypt(
      server.url, dir, sk, tasks.histogram, started, ended, 'histogram',
    );
    const expected = [0, 0, 0, 0];
    for (const b of buckets) expected[b] += 1;
    assert.equal(histogram.report_count, buckets.length, JSON.stringify(histogram));
    assert.deepEqual(histogram.values, expected, JSON.stringify(histogram));
  });

  test('a proof tampered with in the page gets 400 invalidProof', async () => {
    const result = await browserPage.evaluate(
      async ({ server, task }) => {
        const c = await hetally.connect(server, task);
        const report = await c.prepare(1);
        const put = async (bytes) => {
          const res = await fetch(`${server}/tasks/${task}/reports`, {
            method: 'PUT',
            headers: { 'content-type': 'application/vnd.hetally.report' },
            body: bytes,
          });
          const text = await res.text();
          return { status: res.status, body: text };
        };
        // A count report with a proof ends with the bit's z1 response
        // (docs/protocol.md, 9.4): flip a bit of its last byte.
        const tampered = new Uint8Array(report.bytes);
        tampered[tampered.length - 1] ^= 0x01;
        const refused = await put(tampered);
        const accepted = await put(new Uint8Array(report.bytes));
        return { refused, accepted, id: report.id, time: report.time };
      },
      { server: server.url, task: tasks.tamper.id },
    );
    assert.equal(result.refused.status, 400, result.refused.body);
    assert.equal(JSON.parse(result.refused.body).type, 'urn:hetally:error:invalidProof');
    assert.equal(result.accepted.status, 201, `the untampered report: ${result.accepted.body}`);
    assert.equal(result.time % TIME_PRECISION, 0, 'the report time is a multiple of the precision');
  });

  test('a page on an origin the server does not allow cannot connect', async () => {
    const other = await browser.newPage();
    try {
      await other.goto(`${strangerPage.url}/`);
      const outcome = await other.evaluate(
        async ({ server, task }) => {
          try {
            // One attempt: a CORS refusal looks like a network failure,
            // which the client would otherwise retry with backoff.
            await hetally.connect(server, task, { maxAttempts: 1 });
            return 'connected';
          } catch (e) {
            return e instanceof hetally.UnreachableError ? 'unreachable' : `${e.name}: ${e.message}`;
          }
        },
        { server: server.url, task: tasks.count.id },
      );
      assert.equal(outcome, 'unreachable', 'CORS must keep an unlisted origin out');
      // And the server itself is up: the listed origin still connects.
      const ok = await browserPage.evaluate(
        async ({ server, task }) => (await hetally.connect(server, task)) !== undefined,
        { server: server.url, task: tasks.count.id },
      );
      assert.equal(ok, true);
    } finally {
      await other.close();
    }
  });

  test('prepare() timings in Chromium (count and histogram:16, with proofs)', async (t) => {
    const timings = await browserPage.evaluate(
      async ({ server, count, histogram16 }) => {
        const median = (xs) => {
          const s = [...xs].sort((a, b) => a - b);
          const m = s.length >> 1;
          return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
        };
        const measure = async (client, value, n) => {
          await client.prepare(value); // warm-up: JIT, key setup
          const ms = [];
          let last;
          for (let i = 0; i < n; i++) {
            const t0 = performance.now();
            last = await client.prepare(value);
            ms.push(performance.now() - t0);
          }
          return { n, median: median(ms), min: Math.min(...ms), max: Math.max(...ms), last };
        };
        const c = await hetally.connect(server, count);
        const h = await hetally.connect(server, histogram16);
        const countRun = await measure(c, 1, 30);
        const histRun = await measure(h, 5, 10);
        // The timed reports are real: the last of each is accepted.
        const upload = async (task, report) =>
          (
            await fetch(`${server}/tasks/${task}/reports`, {
              method: 'PUT',
              headers: { 'content-type': 'application/vnd.hetally.report' },
              body: new Uint8Array(report.bytes),
            })
          ).status;
        countRun.status = await upload(count, countRun.last);
        histRun.status = await upload(histogram16, histRun.last);
        delete countRun.last;
        delete histRun.last;
        return { count: countRun, histogram16: histRun, userAgent: navigator.userAgent };
      },
      { server: server.url, count: tasks.timing.id, histogram16: tasks.timing16.id },
    );
    assert.equal(timings.count.status, 201, 'a timed count report is accepted');
    assert.equal(timings.histogram16.status, 201, 'a timed histogram:16 report is accepted');
    const line = (name, r) =>
      `${name}: median ${r.median.toFixed(1)} ms over N=${r.n} ` +
      `(min ${r.min.toFixed(1)}, max ${r.max.toFixed(1)})`;
    for (const text of [
      `Chromium: ${timings.userAgent}`,
      line('prepare count with proof', timings.count),
      line('prepare histogram:16 with proofs', timings.histogram16),
    ]) {
      t.diagnostic(text);
    }
  });
});
