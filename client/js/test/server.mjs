// A real hetally-server for the end-to-end tests, on SQLite in a temporary
// directory, with a collector key pair; tasks are made with hetally-client
// and releases decrypted with hetally-keytool (as in
// client/python/tests/test_e2e.py).
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const PRECISION = 60;

/** $HETALLY_BIN_DIR, else $CARGO_TARGET_DIR/debug, else target/debug. */
export function binDir() {
  if (process.env.HETALLY_BIN_DIR) return process.env.HETALLY_BIN_DIR;
  return join(process.env.CARGO_TARGET_DIR || join(REPO, "target"), "debug");
}

export function bin(name) {
  const path = join(binDir(), name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build the server binaries (cargo build --workspace --bins) or set HETALLY_BIN_DIR`);
  }
  return path;
}

export function run(name, ...args) {
  return execFileSync(bin(name), args, { encoding: "utf8", timeout: 120000, stdio: ["ignore", "pipe", "pipe"] });
}

export function batchTime() {
  const now = Math.floor(Date.now() / 1000);
  return now - (now % PRECISION);
}

export class Server {
  static async start() {
    const s = new Server();
    s.root = mkdtempSync(join(tmpdir(), "hetally-js-"));
    run("hetally-keytool", "keygen", "--scheme", "paillier", "--out", join(s.root, "keys"));
    s.sk = join(s.root, "keys", "collector.sk");
    s.pk = join(s.root, "keys", "collector.pk");
    s.tasks = 0;
    s.proc = spawn(bin("hetally-server"), ["--data-dir", join(s.root, "data"), "--listen", "127.0.0.1:0", "--workers", "2"], {
      stdio: ["ignore", "pipe", openSync(join(s.root, "server.log"), "w")],
    });
    const lines = createInterface({ input: s.proc.stdout });
    const first = await new Promise((ok, fail) => {
      lines.once("line", ok);
      s.proc.once("exit", (code) => fail(new Error(`hetally-server exited (${code}) before listening`)));
    });
    const prefix = "hetally-server listening on ";
    if (!first.startsWith(prefix)) {
      s.proc.kill();
      throw new Error(`hetally-server did not start: ${first}`);
    }
    s.url = first.slice(prefix.length).split(" ")[0];
    return s;
  }

  /** Creates a task; each gets a max batch size of its own so that no two
   * definitions (and ids) collide. */
  createTask(measurement, ...extra) {
    this.tasks += 1;
    const out = JSON.parse(
      run("hetally-client", "task", "create", "--server", this.url,
        "--admin-token-file", join(this.root, "data", "admin.token"),
        "--public-key", this.pk, "--measurement", measurement,
        "--min-batch-size", "1", "--max-batch-size", String(1000 + this.tasks),
        "--time-precision", String(PRECISION), "--json", ...extra),
    );
    const token = join(this.root, `${this.tasks}.token`);
    writeFileSync(token, out.collector_token);
    return { taskId: out.task_id, token };
  }

  collect(taskId, token, start, duration = PRECISION) {
    const out = join(this.root, `${start}-${taskId.slice(0, 8)}.agg`);
    run("hetally-client", "collect", "--server", this.url, `--task=${taskId}`, "--token-file", token,
      "--start", String(start), "--duration", String(duration), "--out", out);
    return { file: readFileSync(out), decrypted: JSON.parse(run("hetally-keytool", "decrypt", "--key", this.sk, out, "--format", "json")) };
  }

  stop() {
    this.proc.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}
