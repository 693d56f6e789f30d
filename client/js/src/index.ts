/**
 * hetally: a browser and Node client for hetally's homomorphic mode
 * (Paillier tasks), written from docs/protocol.md.
 *
 *     const client = await hetally.connect("https://telemetry.example", taskId);
 *     await client.send(1);
 */

import { Tape } from "./random.js";
import { prepareReport } from "./report.js";
import type { PreparedReport } from "./report.js";
import type { PaillierTask } from "./task.js";

export { connect, Client, REPORT_MEDIA_TYPE, parseRetryAfter } from "./client.js";
export type { ClientOptions } from "./client.js";
export {
  HetallyError,
  TaskMismatchError,
  InvalidTaskError,
  UnsupportedTaskError,
  InvalidMeasurementError,
  ServerError,
  UnreachableError,
} from "./errors.js";
export type { PreparedReport } from "./report.js";
export type { MeasurementInput } from "./measurement.js";
export { PaillierTask, decodeDefinition, taskIdOf } from "./task.js";
export type { TaskDefinition } from "./task.js";
export type { TrusteeNoise } from "./dp.js";
export { base64urlEncode, base64urlDecode, hexToBytes, bytesToHex } from "./encoding.js";

/**
 * For tests only: prepares a report drawing every random byte from `tape`
 * in the order of protocol 15.3, and fails if the tape is too short or
 * not used up. Production code uses `Client.prepare`.
 */
export async function _prepareFromTape(
  task: PaillierTask,
  values: unknown,
  time: number | bigint,
  tape: Uint8Array,
): Promise<PreparedReport> {
  const source = new Tape(tape);
  const report = await prepareReport(task, values, time, source);
  source.finish();
  return report;
}
