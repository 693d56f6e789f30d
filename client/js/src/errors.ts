/**
 * The errors of the SDK. Every error it throws is a `HetallyError`; the
 * subclasses say which step failed, so that a page can tell a refused task
 * from a refused measurement, a refusing server or a missing network.
 */

/** The base class of every error this SDK throws. */
export class HetallyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The definition the server served does not hash to the task id asked for
 * (protocol 7.6): the server is wrong or substituted another key. */
export class TaskMismatchError extends HetallyError {}

/** The definition hashes to the task id but breaks a rule of protocol 7.2
 * and 7.3 (a bad key, a layout that is not the derived one, ...). */
export class InvalidTaskError extends HetallyError {}

/** The task is valid but of a kind this SDK does not implement (TFHE). */
export class UnsupportedTaskError extends HetallyError {}

/** The value given to `prepare` or `send` is not a valid measurement of the
 * task (protocol 4.5); nothing was encrypted or sent. */
export class InvalidMeasurementError extends HetallyError {}

/** The server answered with an error status. `problem` is the problem
 * type's name (`invalidProof`, `reportTooEarly`, ...; protocol 13.5), or
 * null when the body was not a hetally problem document. */
export class ServerError extends HetallyError {
  readonly status: number;
  readonly problemType: string | null;
  readonly problem: string | null;
  readonly detail: string | null;
  /** Seconds from the Retry-After header, or null without one. */
  readonly retryAfter: number | null;

  constructor(
    status: number,
    problemType: string | null,
    detail: string | null,
    retryAfter: number | null,
    context: string,
  ) {
    const problem =
      problemType !== null && problemType.startsWith("urn:hetally:error:")
        ? problemType.slice("urn:hetally:error:".length)
        : null;
    super(
      `${context}: the server answered ${status}` +
        (problem !== null ? ` ${problem}` : "") +
        (detail ? `: ${detail}` : ""),
    );
    this.status = status;
    this.problemType = problemType;
    this.problem = problem;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** The server could not be reached (no answer, connection refused, DNS,
 * CORS refusal in a browser) after every attempt. */
export class UnreachableError extends HetallyError {}
