/** Measurement types (protocol 4): their binary encoding and the values a
 * report carries. */

import { InvalidMeasurementError, InvalidTaskError } from "./errors.js";
import type { Reader } from "./encoding.js";
import { Writer } from "./encoding.js";

export type MeasurementKind = "count" | "sum" | "histogram" | "sumvec";

export interface Measurement {
  kind: MeasurementKind;
  /** values per report */
  len: number;
  /** bits per value */
  valueBits: number;
  /** the binary encoding of 4.4 */
  encoding: Uint8Array;
  /** the text form of 4.3 */
  text: string;
}

const MAX_BITS = 62;
const MAX_LENGTH = 65536;

export function readMeasurement(r: Reader): Measurement {
  const tag = r.u8("the measurement tag");
  const w = new Writer().u8(tag);
  const bitsOk = (b: number) => b >= 1 && b <= MAX_BITS;
  switch (tag) {
    case 1:
      return { kind: "count", len: 1, valueBits: 1, encoding: w.finish(), text: "count" };
    case 2: {
      const bits = r.u32("sum bits");
      if (!bitsOk(bits)) throw new InvalidTaskError(`sum:${bits} is out of range (bits 1..=62)`);
      return { kind: "sum", len: 1, valueBits: bits, encoding: w.u32(bits).finish(), text: `sum:${bits}` };
    }
    case 3: {
      const buckets = r.u32("histogram buckets");
      if (buckets < 2 || buckets > MAX_LENGTH) {
        throw new InvalidTaskError(`histogram:${buckets} is out of range (buckets 2..=65536)`);
      }
      return {
        kind: "histogram",
        len: buckets,
        valueBits: 1,
        encoding: w.u32(buckets).finish(),
        text: `histogram:${buckets}`,
      };
    }
    case 4: {
      const len = r.u32("sumvec length");
      const bits = r.u32("sumvec bits");
      if (len < 1 || len > MAX_LENGTH || !bitsOk(bits)) {
        throw new InvalidTaskError(`sumvec:${len}:${bits} is out of range (length 1..=65536, bits 1..=62)`);
      }
      return {
        kind: "sumvec",
        len,
        valueBits: bits,
        encoding: w.u32(len).u32(bits).finish(),
        text: `sumvec:${len}:${bits}`,
      };
    }
    default:
      throw new InvalidTaskError(`unknown measurement tag ${tag}`);
  }
}

/** What `prepare` and `send` accept: a number or bigint, an array of them,
 * a boolean for a count, or the text form the reference CLI takes ("1",
 * "3,0,7"). A histogram takes a bucket index or a one-hot vector. */
export type MeasurementInput = number | bigint | boolean | string | ReadonlyArray<number | bigint>;

function toBig(x: unknown, what: string): bigint {
  if (typeof x === "bigint") return x;
  if (typeof x === "number") {
    if (!Number.isSafeInteger(x)) throw new InvalidMeasurementError(`${what} ${x} is not an exact integer`);
    return BigInt(x);
  }
  if (typeof x === "string") {
    const s = x.trim();
    if (!/^[0-9]+$/.test(s)) throw new InvalidMeasurementError(`${what} "${x}" is not a decimal number`);
    return BigInt(s);
  }
  throw new InvalidMeasurementError(`${what} has type ${typeof x}, not a number`);
}

/** Turns an input into the measurement's vector of values and checks it
 * (protocol 4.5). */
export function measurementValues(m: Measurement, input: unknown): bigint[] {
  let items: unknown[];
  if (typeof input === "boolean" && m.kind === "count") items = [input ? 1n : 0n];
  else if (typeof input === "string") items = input.includes(",") ? input.split(",") : [input];
  else if (Array.isArray(input)) items = input;
  else items = [input];
  let values: bigint[];
  if (m.kind === "histogram" && items.length === 1) {
    const index = toBig(items[0], "the bucket index");
    if (index >= BigInt(m.len)) {
      throw new InvalidMeasurementError(`bucket ${index} is out of range: ${m.text} has buckets 0 to ${m.len - 1}`);
    }
    values = Array.from({ length: m.len }, (_, i) => (BigInt(i) === index ? 1n : 0n));
  } else {
    values = items.map((x, i) => toBig(x, `value ${i}`));
  }
  if (values.length !== m.len) {
    throw new InvalidMeasurementError(`${m.text} takes ${m.len} value(s), got ${values.length}`);
  }
  const max = (1n << BigInt(m.valueBits)) - 1n;
  values.forEach((v, i) => {
    if (v < 0n || v > max) {
      throw new InvalidMeasurementError(`value ${i} is ${v}, outside 0..=${max} for ${m.text}`);
    }
  });
  if (m.kind === "histogram" && values.reduce((a, b) => a + b, 0n) !== 1n) {
    throw new InvalidMeasurementError(`a ${m.text} report has exactly one 1 (a one-hot vector)`);
  }
  return values;
}
