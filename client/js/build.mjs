// Builds dist/hetally.mjs (ESM), dist/hetally.min.js (a minified IIFE that
// sets globalThis.hetally) and dist/types (.d.ts, by tsc, which also
// type-checks), and prints the bundle sizes. Fails if the minified bundle
// is over 60 KB.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const LIMIT = 60000; // 60 KB, counted in decimal to be safe
rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
const common = { entryPoints: ["src/index.ts"], bundle: true, target: "es2020", logLevel: "warning" };
await build({ ...common, format: "esm", outfile: "dist/hetally.mjs" });
await build({
  ...common,
  format: "iife",
  globalName: "hetally",
  minify: true,
  // Also when the script is evaluated in a scope of its own.
  footer: { js: "globalThis.hetally=hetally;" },
  outfile: "dist/hetally.min.js",
});
const min = readFileSync("dist/hetally.min.js");
const gz = gzipSync(min, { level: 9 }).length;
console.log(`dist/hetally.min.js: ${min.length} bytes minified, ${gz} bytes gzipped (limit ${LIMIT})`);
if (min.length > LIMIT) {
  console.error(`dist/hetally.min.js is ${min.length} bytes, over the limit of ${LIMIT}`);
  process.exit(1);
}
