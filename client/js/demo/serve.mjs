#!/usr/bin/env node
// Serves the hetally demo page (index.html, demo.js) and the SDK bundle
// (dist/hetally.min.js) from a small static HTTP server, and prints the
// page's URL:
//
//   node client/js/demo/serve.mjs --server http://127.0.0.1:8080 --task TASK_ID [--port 8081] [--host 127.0.0.1]
//
// The page is on another origin than the hetally-server, so the server
// must allow it: hetally-server --cors-origin http://127.0.0.1:8081
// (docs/javascript.md, "In a web page: CORS and the demo").
//
// The module also exports serveFiles(), the static server the browser test
// (test/browser/browser.test.mjs) serves its page with.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The SDK bundle the page loads (`npm --prefix client/js run build`). */
export const BUNDLE = resolve(HERE, '..', 'dist', 'hetally.min.js');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
};

function typeOf(path) {
  const dot = path.lastIndexOf('.');
  return TYPES[dot < 0 ? '' : path.slice(dot)] ?? 'application/octet-stream';
}

/**
 * Serves exactly the given files on loopback (or `host`), nothing else:
 * `files` maps a URL path (`/`, `/hetally.min.js`) to a file on disk, or
 * to `{ body, type }` for content made on the fly. Files are read on each
 * request, so a rebuilt bundle is served at once. Resolves to
 * `{ url, port, close() }` once listening; port 0 picks a free port.
 */
export function serveFiles(files, { host = '127.0.0.1', port = 0 } = {}) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const entry = files[path];
    if ((req.method !== 'GET' && req.method !== 'HEAD') || entry === undefined) {
      res.writeHead(entry === undefined ? 404 : 405, { 'content-type': 'text/plain' });
      res.end(entry === undefined ? 'not found\n' : 'method not allowed\n');
      return;
    }
    try {
      const { body, type } =
        typeof entry === 'string' ? { body: await readFile(entry), type: typeOf(entry) } : entry;
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`cannot read ${path}: ${e.message}\n`);
    }
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const bound = server.address().port;
      const shown = host.includes(':') ? `[${host}]` : host;
      resolvePromise({
        url: `http://${shown}:${bound}`,
        port: bound,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

async function main() {
  const usage =
    'usage: node client/js/demo/serve.mjs --server URL --task TASK_ID [--port 8081] [--host 127.0.0.1]';
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        server: { type: 'string' },
        task: { type: 'string' },
        port: { type: 'string', default: '8081' },
        host: { type: 'string', default: '127.0.0.1' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    console.error(`serve.mjs: ${e.message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    return;
  }
  if (!values.server || !values.task) {
    console.error(`serve.mjs: --server and --task are required\n${usage}`);
    process.exit(2);
  }
  let server;
  try {
    server = new URL(values.server);
  } catch {
    console.error(`serve.mjs: --server ${values.server} is not a URL (e.g. http://127.0.0.1:8080)`);
    process.exit(2);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve.mjs: --port ${values.port} is not a port number`);
    process.exit(2);
  }
  if (!existsSync(BUNDLE)) {
    console.error(`serve.mjs: ${BUNDLE} is missing: build it with npm --prefix client/js run build`);
    process.exit(1);
  }
  const config = JSON.stringify({ server: server.href.replace(/\/$/, ''), task: values.task });
  let page;
  try {
    page = await serveFiles(
      {
        '/': join(HERE, 'index.html'),
        '/index.html': join(HERE, 'index.html'),
        '/demo.js': join(HERE, 'demo.js'),
        '/hetally.min.js': BUNDLE,
        '/config.json': { body: config, type: 'application/json' },
      },
      { host: values.host, port },
    );
  } catch (e) {
    console.error(`serve.mjs: cannot listen on ${values.host}:${port}: ${e.message}`);
    process.exit(1);
  }
  console.log(`hetally demo: open ${page.url}/`);
  console.log(
    `(the server must allow this origin: hetally-server --cors-origin ${page.url} ...; Ctrl-C stops)`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main();
}
