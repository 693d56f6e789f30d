// Times Client.prepare's work in Node: the median of N reports for a count
// task with input proofs and a histogram:16 task with input proofs, under
// the 2048-bit key of the test vectors. Run `npm run build` first, then
// `node bench.mjs [N]`.
import { readFileSync } from "node:fs";
import * as hetally from "./dist/hetally.mjs";

const N = Number(process.argv[2] ?? 30);
const vector = (name) => JSON.parse(readFileSync(new URL(`../../test-vectors/v1/reports/${name}`, import.meta.url)));
const count = hetally.hexToBytes(vector("paillier-count-proofs.json").definition);
const hist = hetally.hexToBytes(vector("paillier-histogram-proofs.json").definition);
// histogram:4 -> histogram:16: the slot width does not depend on the bucket count.
hist[5] = 16;

async function time(label, def, value) {
  const t0 = performance.now();
  const task = await hetally.PaillierTask.fromDefinition(def);
  task.H; // the fixed-base table, built once per client
  const setup = performance.now() - t0;
  const client = new hetally.Client(task, "http://unused/", {});
  const times = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await client.prepare(value);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(N / 2)];
  console.log(`${label}: median ${median.toFixed(1)} ms over ${N} (min ${times[0].toFixed(1)}, max ${times[N - 1].toFixed(1)}); first-use setup ${setup.toFixed(0)} ms`);
}

await time("count + proof", count, 1);
await time("histogram:16 + proofs", hist, 5);
