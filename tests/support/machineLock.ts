import { spawn, ChildProcessByStdio } from "node:child_process";
import { mkdirSync } from "node:fs";
import type { Readable, Writable } from "node:stream";

/**
 * jest runs test files in two workers at once. Suites that use the same machine-wide things (the
 * `plutus` account, /opt/plutus-sync, /etc/plutus, /etc/cron.d/plutus-sync, /var/lib/plutus) hold
 * the same named lock for their whole run, so they never overlap; every other suite uses only
 * names and folders of its own and runs beside them.
 *
 * The lock is an flock(1) held by a child process that waits on its stdin: closing the pipe
 * releases it, and so does the worker's death (the kernel closes the pipe), so a crashed or
 * killed run never leaves it held.
 */
export type MachineResource = "deploy";

/** Locks of the test suites themselves; not /run/lock/plutus-machine.lock, the helpers' wrapper. */
const LOCK_DIR = "/run/lock";

/** How long a suite may wait for the suite ahead of it: the longest such suite runs about 2 minutes. */
export const MACHINE_LOCK_WAIT_MS = 15 * 60_000;

export function machineLockPath(resource: MachineResource): string {
  return `${LOCK_DIR}/plutus-tests-${resource}.lock`;
}

export class MachineLock {
  private holder: ChildProcessByStdio<Writable, Readable, Readable> | undefined;

  constructor(readonly resource: MachineResource) {}

  /** Resolves once this process holds the lock (waits as long as another worker holds it). */
  async acquire(): Promise<void> {
    if (this.holder) throw new Error(`the ${this.resource} machine lock is already held by this suite`);
    mkdirSync(LOCK_DIR, { recursive: true, mode: 0o755 });
    const path = machineLockPath(this.resource);
    const holder = spawn("flock", ["--exclusive", path, "sh", "-c", 'echo held; exec cat >/dev/null'], { stdio: ["pipe", "pipe", "pipe"] });
    await new Promise<void>((resolve, reject) => {
      let stderr = "";
      holder.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
      holder.stdout.once("data", () => resolve());
      holder.once("error", (error) => reject(new Error(`could not start flock for ${path}: ${error.message}`, { cause: error })));
      holder.once("close", (code) => reject(new Error(`flock ${path} ended (exit ${code}) before it held the lock: ${stderr.trim()}`)));
    });
    this.holder = holder;
  }

  /** Releases the lock and waits until the holder has ended, so the next suite can take it at once. */
  async release(): Promise<void> {
    const holder = this.holder;
    this.holder = undefined;
    if (!holder || holder.exitCode !== null || holder.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      holder.once("close", () => resolve());
      holder.stdin.end();
    });
  }
}
