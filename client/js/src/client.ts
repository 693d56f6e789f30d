/**
 * The client: fetch and verify a task (protocol 7.6), prepare reports, and
 * upload them (8.4, 13) with retries, exponential backoff with jitter and
 * Retry-After.
 */

import { base64urlDecode, parseId } from "./encoding.js";
import {
  HetallyError,
  InvalidTaskError,
  ServerError,
  UnreachableError,
} from "./errors.js";
import type { MeasurementInput } from "./measurement.js";
import { cryptoRandom } from "./random.js";
import { prepareReport } from "./report.js";
import type { PreparedReport } from "./report.js";
import { PaillierTask } from "./task.js";

export const REPORT_MEDIA_TYPE = "application/vnd.hetally.report";

export interface ClientOptions {
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Attempts per request, the first included (default 6). */
  maxAttempts?: number;
  /** First backoff delay in ms, doubled per attempt (default 500). */
  baseDelayMs?: number;
  /** Largest backoff delay in ms (default 30000). */
  maxDelayMs?: number;
  /** A Retry-After longer than this (ms) is not waited for: the error is
   * thrown with its `retryAfter` (default 300000). */
  maxRetryAfterMs?: number;
}

interface Settings {
  fetch: typeof fetch;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
}

/** A uniform fraction in [0, 1) from the platform's CSPRNG. */
function jitter(): number {
  const x = new Uint32Array(1);
  globalThis.crypto.getRandomValues(x);
  return x[0] / 2 ** 32;
}

/** Retry-After in seconds: delay-seconds or an HTTP-date (RFC 9110). */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - nowMs) / 1000));
}

async function problemOf(res: Response, context: string): Promise<ServerError> {
  let type: string | null = null;
  let detail: string | null = null;
  try {
    const body = await res.text();
    const doc = JSON.parse(body);
    if (doc && typeof doc === "object") {
      if (typeof doc.type === "string") type = doc.type;
      if (typeof doc.detail === "string") detail = doc.detail;
    }
  } catch {
    // not a problem document: status only
  }
  return new ServerError(res.status, type, detail, parseRetryAfter(res.headers.get("Retry-After")), context);
}

function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends a request until it gets an answer that is not transient. Network
 * errors, 408, 429 and 5xx are retried (at most `maxAttempts` times in
 * all) after exponential backoff with full jitter, or after Retry-After
 * plus a random fraction of it; other answers are returned.
 */
async function withRetries(
  s: Settings,
  url: string,
  init: RequestInit,
  context: string,
): Promise<{ res: Response; attempt: number }> {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < s.maxAttempts; attempt++) {
    let res: Response;
    try {
      res = await s.fetch(url, init);
    } catch (err) {
      lastError = err;
      if (attempt + 1 < s.maxAttempts) {
        await sleep(jitter() * Math.min(s.maxDelayMs, s.baseDelayMs * 2 ** attempt));
      }
      continue;
    }
    if (!retryable(res.status)) return { res, attempt };
    const error = await problemOf(res, context);
    lastError = error;
    if (attempt + 1 >= s.maxAttempts) break;
    let delay = jitter() * Math.min(s.maxDelayMs, s.baseDelayMs * 2 ** attempt);
    if (error.retryAfter !== null) {
      const ra = error.retryAfter * 1000;
      if (ra > s.maxRetryAfterMs) throw error;
      delay = ra + jitter() * ra;
    }
    await sleep(delay);
  }
  if (lastError instanceof ServerError) throw lastError;
  throw new UnreachableError(
    `${context}: no answer from ${url} after ${s.maxAttempts} attempt(s): ${String(lastError)}`,
    { cause: lastError },
  );
}

/** A connection to one verified Paillier task on one server. */
export class Client {
  /** The task id (base64url). */
  readonly taskId: string;
  /** Where reports go: `PUT` with `mediaType`. */
  readonly uploadUrl: string;
  /** The media type of a report body (protocol 8.1). */
  readonly mediaType = REPORT_MEDIA_TYPE;

  constructor(
    readonly task: PaillierTask,
    uploadUrl: string,
    private readonly settings: Settings,
  ) {
    this.taskId = task.id;
    this.uploadUrl = uploadUrl;
  }

  /** The measurement's text form, e.g. `histogram:16`. */
  get measurement(): string {
    return this.task.definition.measurement.text;
  }

  /** Whether reports carry input proofs. */
  get inputProofs(): boolean {
    return this.task.definition.inputProofs;
  }

  /**
   * Encrypts (and proves, if the task requires it) a measurement without
   * sending it. `time` is Unix seconds (default: now).
   */
  prepare(value: MeasurementInput, time?: number): Promise<PreparedReport> {
    const t = time ?? Math.floor(Date.now() / 1000);
    return prepareReport(this.task, value, t, cryptoRandom);
  }

  /** Uploads prepared bytes, retrying transient failures with the same
   * bytes. A `reportReplayed` answer to a retry counts as success. */
  async upload(report: PreparedReport): Promise<string> {
    const { res, attempt } = await withRetries(
      this.settings,
      this.uploadUrl,
      {
        method: "PUT",
        headers: { "Content-Type": REPORT_MEDIA_TYPE },
        body: report.bytes as BodyInit,
      },
      "uploading a report",
    );
    if (res.status === 201 || res.status === 200) {
      await res.body?.cancel();
      return report.id;
    }
    const error = await problemOf(res, "uploading a report");
    if (attempt > 0 && error.problem === "reportReplayed") return report.id;
    throw error;
  }

  /** Prepares and uploads one measurement; returns its report id. */
  async send(value: MeasurementInput, time?: number): Promise<string> {
    return this.upload(await this.prepare(value, time));
  }
}

/**
 * The JSON members of TaskInfo other than `definition` are informative, but
 * a client SHOULD refuse a task whose members contradict the verified
 * definition (protocol 13.4). Members a server does not send are skipped.
 */
function checkPlainMembers(info: Record<string, unknown>, task: PaillierTask): void {
  const def = task.definition;
  const expected: [string, unknown][] = [
    ["task_id", task.id],
    ["scheme", def.scheme],
    ["measurement", def.measurement.text],
    ["input_proofs", def.inputProofs],
    ["slot_bits", task.slotBits],
    ["slots_per_ciphertext", task.k],
  ];
  for (const [name, value] of expected) {
    const got = info[name];
    if (got !== undefined && got !== null && got !== value) {
      throw new InvalidTaskError(
        `the server's task ${task.id} says ${name} is ${JSON.stringify(got)}, ` +
          `but its definition says ${JSON.stringify(value)}`,
      );
    }
  }
}

/**
 * Fetches task `taskId` from `serverUrl`, checks that its definition
 * hashes to the id, decodes and checks it, and returns a client for it.
 */
export async function connect(serverUrl: string, taskId: string, options: ClientOptions = {}): Promise<Client> {
  const expected = parseId(taskId, 32);
  if (expected === null) {
    throw new HetallyError(`"${taskId}" is not a task id (43 characters of base64url without padding)`);
  }
  const f = options.fetch ?? globalThis.fetch.bind(globalThis);
  const settings: Settings = {
    fetch: f,
    maxAttempts: Math.max(1, options.maxAttempts ?? 6),
    baseDelayMs: options.baseDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 30000,
    maxRetryAfterMs: options.maxRetryAfterMs ?? 300000,
  };
  const base = serverUrl.replace(/\/+$/, "");
  const taskUrl = `${base}/tasks/${taskId}`;
  const { res } = await withRetries(settings, taskUrl, { method: "GET" }, `fetching task ${taskId}`);
  if (res.status !== 200) throw await problemOf(res, `fetching task ${taskId}`);
  let info: unknown;
  try {
    info = await res.json();
  } catch (err) {
    throw new InvalidTaskError(`the server's answer for task ${taskId} is not JSON`, { cause: err });
  }
  const encoded = (info as { definition?: unknown } | null)?.definition;
  const definition = typeof encoded === "string" ? base64urlDecode(encoded) : null;
  if (definition === null) {
    throw new InvalidTaskError(`the server's answer for task ${taskId} has no base64url "definition"`);
  }
  const task = await PaillierTask.fromDefinition(definition, expected);
  checkPlainMembers(info as Record<string, unknown>, task);
  // Build the table of powers of H now (about 0.1 s), so that the first
  // report is as quick as the others.
  void task.H;
  return new Client(task, `${taskUrl}/reports`, settings);
}

