/**
 * Byte-level helpers: hex, strict base64url (protocol 2.4) and a reader and
 * writer for the big-endian encodings of protocol section 3. The reader
 * caps every length before reading and names the field that failed.
 */

import { InvalidTaskError } from "./errors.js";

export function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError("not a hex string");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.substr(2 * i, 2), 16);
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function bytesToHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_INDEX = new Map<string, number>(Array.from(B64URL, (c, i) => [c, i]));

/** base64url without padding (RFC 4648 section 5). */
export function base64urlEncode(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64URL[v >> 18] + B64URL[(v >> 12) & 63] + B64URL[(v >> 6) & 63] + B64URL[v & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const v = bytes[i] << 16;
    out += B64URL[v >> 18] + B64URL[(v >> 12) & 63];
  } else if (rest === 2) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64URL[v >> 18] + B64URL[(v >> 12) & 63] + B64URL[(v >> 6) & 63];
  }
  return out;
}

/** Strict base64url without padding: only the alphabet, no padding or
 * whitespace, a canonical last character. Returns null if `text` is not
 * such a string. */
export function base64urlDecode(text: string): Uint8Array | null {
  if (text.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const ch of text) {
    const v = B64URL_INDEX.get(ch);
    if (v === undefined) return null;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // The unused low bits of the last character must be zero.
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

/** Parses a task id (32 bytes) or report id (16 bytes) in its text form. */
export function parseId(text: string, length: number): Uint8Array | null {
  const expected = Math.ceil((length * 4) / 3);
  if (typeof text !== "string" || text.length !== expected) return null;
  const bytes = base64urlDecode(text);
  return bytes !== null && bytes.length === length ? bytes : null;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A cursor over a byte string; every failure is an InvalidTaskError (or
 * the error class given) naming what was being read. */
export class Reader {
  private at = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
    private readonly fail: (message: string) => Error = (m) => new InvalidTaskError(m),
  ) {}

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  take(n: number, field: string): Uint8Array {
    if (n > this.remaining) {
      throw this.fail(
        `${this.what} is truncated: ${field} needs ${n} bytes but only ${this.remaining} remain`,
      );
    }
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  u8(field: string): number {
    return this.take(1, field)[0];
  }

  u16(field: string): number {
    const b = this.take(2, field);
    return (b[0] << 8) | b[1];
  }

  u32(field: string): number {
    const b = this.take(4, field);
    return ((b[0] << 24) >>> 0) + ((b[1] << 16) | (b[2] << 8) | b[3]);
  }

  u64(field: string): bigint {
    const b = this.take(8, field);
    let v = 0n;
    for (const x of b) v = (v << 8n) | BigInt(x);
    return v;
  }

  /** var_bytes (protocol 3.2) with a cap checked before reading. */
  varBytes(cap: number, field: string): Uint8Array {
    const len = this.u32(`the length of ${field}`);
    if (len > cap) {
      throw this.fail(`${this.what}: ${field} is ${len} bytes long, over its limit of ${cap}`);
    }
    return this.take(len, field);
  }

  /** Fails if bytes remain (protocol 3.4). */
  finish(): void {
    if (this.remaining !== 0) {
      throw this.fail(`${this.what} has ${this.remaining} trailing bytes after its last field`);
    }
  }
}

/** Collects big-endian fields into one byte string. */
export class Writer {
  private parts: Uint8Array[] = [];

  bytes(b: Uint8Array): this {
    this.parts.push(b);
    return this;
  }

  u8(v: number): this {
    return this.bytes(Uint8Array.of(v));
  }

  u32(v: number): this {
    return this.bytes(Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255));
  }

  u64(v: bigint): this {
    const out = new Uint8Array(8);
    let x = v;
    for (let i = 7; i >= 0; i--) {
      out[i] = Number(x & 255n);
      x >>= 8n;
    }
    return this.bytes(out);
  }

  finish(): Uint8Array {
    return concatBytes(this.parts);
  }
}
