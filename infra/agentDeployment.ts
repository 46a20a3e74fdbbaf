/*
 * Ships the agent bundle to the Ubuntu VM and proves one order flows (issue 4, "In the stack").
 *
 * Every command string and stdin document the stack sends lives in a pure render* function below;
 * the resources use exactly those, so a test can run them against a real Linux host. To record
 * them from the program itself, under mocks:
 *
 *   const seen: Record<string, any> = {};
 *   await pulumi.runtime.setMocks({
 *     newResource: (a) => { if (a.type === "command:remote:Command") seen[a.name] = a.inputs; return { id: a.name, state: a.inputs }; },
 *     call: (a) => { throw new Error(`unexpected call ${a.token}`); },
 *   }, "plutus", "dev");
 *   // set the dev config (tests/infra/harness.ts: runProgram does this) and import infra/index.ts
 *   // seen["agent-wait"].create, seen["agent-install"].create + .stdin (bundle line, then install.sh's
 *   // document), seen["agent-uninstall"].delete, seen["canary-run"].create
 *
 * tests/infra/harness.ts `runProgram()` does all of this and returns the recorded inputs (secrets
 * unwrapped), so tests/deploy can simply call it with a fixture bundle directory.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { CANARY_PREFIX, type AgentConfig } from "@plutus/shared";
import type { AgentBundle } from "./bundle";
import { parseJsonResult } from "./powershell";
import type { AgentMode } from "./config";

export const AGENT_CONFIG_PATH = "/etc/plutus/agent.json";
export const AGENT_HOME = "/opt/plutus-sync";
export const AGENT_ACCOUNT = "plutus";

/** Single-quotes a value for POSIX sh. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/**
 * Waits for cloud-init. Exit code 2 ("done, with recoverable errors", e.g. a deprecated key) is
 * accepted: the VM is up and configured; the long status is printed so the warning shows in the
 * Pulumi log. Any other non-zero code fails the step.
 */
export function renderWaitCommand(): string {
  return [
    "set -u",
    "cloud-init status --wait >/dev/null",
    "rc=$?",
    "cloud-init status --long || true",
    'if [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ]; then exit 0; fi',
    'echo "cloud-init failed (exit code $rc)" >&2',
    'exit "$rc"',
  ].join("\n");
}

/** Exit code of the install step when the bundle on stdin is not the one the program sent (install.sh's "input error, nothing changed"). */
export const BUNDLE_REFUSED_EXIT_CODE = 2;

/**
 * What root runs on the VM, as `bash -c <this> plutus-sync-install <sha256> <bytes> <mode>`. It never trusts
 * a folder that already exists: it makes a fresh one (mktemp -d: random name, root-owned, 0700),
 * reads exactly <bytes> of stdin (the bundle archive as one base64 line), refuses the archive
 * unless its SHA-256 is <sha256>, unpacks it there and runs its install.sh --stdin --<mode> (mode:
 * cron or watch, the third argument), which reads the rest of stdin (configuration and private key). The folder is removed however the step ends.
 */
const INSTALL_AS_ROOT = [
  "set -euo pipefail",
  'expected="$1"',
  'length="$2"',
  'case "$3" in cron | watch) ;; *) echo "agent mode must be cron or watch, got: $3" >&2; exit 2 ;; esac',
  'work="$(mktemp -d --tmpdir plutus-sync-bundle.XXXXXXXXXX)"',
  'cleanup() { rm -rf -- "$work"; }',
  "trap cleanup EXIT",
  'refuse() { echo "agent bundle refused: $1; nothing was installed" >&2; exit ' + String(BUNDLE_REFUSED_EXIT_CODE) + "; }",
  'head -c "$length" >"$work/bundle.tar.b64"',
  'got="$(wc -c <"$work/bundle.tar.b64")"',
  '[ "$got" -eq "$length" ] || refuse "stdin ended after $got of the $length bytes of the bundle"',
  'base64 -d "$work/bundle.tar.b64" >"$work/bundle.tar" 2>/dev/null || refuse "the bundle on stdin is not base64"',
  'actual="$(sha256sum "$work/bundle.tar")"',
  'actual="${actual%% *}"',
  '[ "$actual" = "$expected" ] || refuse "its SHA-256 is $actual, but the Pulumi program sent $expected"',
  'mkdir "$work/bundle"',
  'tar -x --no-same-owner -f "$work/bundle.tar" -C "$work/bundle"',
  'bash "$work/bundle/install.sh" --stdin "--$3"',
].join("\n");

/** The number of stdin bytes the bundle takes: its base64 line, newline included. */
export function bundleStdinBytes(bundle: Pick<AgentBundle, "archive">): number {
  return Buffer.byteLength(renderBundleStdin(bundle));
}

/** The first part of the install step's stdin: the bundle archive as one base64 line (data, never code). */
export function renderBundleStdin(bundle: Pick<AgentBundle, "archive">): string {
  return `${bundle.archive.toString("base64")}\n`;
}

/**
 * The install step's command: unpacks the bundle from stdin into a fresh root-only folder, checks it
 * against the digest computed here, runs its install.sh --stdin and removes the folder — all in one
 * command, so a re-run never depends on what a previous step or a reboot left in /tmp.
 */
export function renderInstallCommand(bundle: Pick<AgentBundle, "archive" | "archiveSha256">, agentMode: AgentMode = "cron"): string {
  if (!/^[0-9a-f]{64}$/.test(bundle.archiveSha256)) throw new Error(`bundle archive digest must be 64 hex digits, got ${JSON.stringify(bundle.archiveSha256)}`);
  if (agentMode !== "cron" && agentMode !== "watch") throw new Error(`agent mode must be "cron" or "watch", got ${JSON.stringify(agentMode)}`);
  return `sudo -n bash -c ${shQuote(INSTALL_AS_ROOT)} plutus-sync-install ${bundle.archiveSha256} ${bundleStdinBytes(bundle)} ${agentMode}`;
}

/** install.sh --stdin reads exactly this document: the agent configuration and the sync private key. */
export function renderInstallStdin(agentConfig: AgentConfig, privateKey: string): string {
  return `${JSON.stringify({ agentConfig, privateKey })}\n`;
}

/** The install step's whole stdin: the bundle line, then install.sh's document. */
export function renderAgentInstallStdin(bundle: Pick<AgentBundle, "archive">, agentConfig: AgentConfig, privateKey: string): string {
  return renderBundleStdin(bundle) + renderInstallStdin(agentConfig, privateKey);
}

/** The create step of the uninstall resource: nothing to do until the stack is destroyed. */
export function renderUninstallArmCommand(): string {
  return 'echo "plutus-sync will be uninstalled from this host when the stack is destroyed"';
}

/** Tolerates an agent already removed by hand, so `pulumi destroy` does not stall on it. */
export function renderUninstallCommand(): string {
  return `if [ -x ${AGENT_HOME}/install.sh ]; then sudo bash ${AGENT_HOME}/install.sh --uninstall; else echo "plutus-sync is not installed on this host; nothing to remove"; fi`;
}

export interface CanaryInput {
  readonly outbox: string;
  readonly quarantine: string;
  readonly minAgeSeconds: number;
}

/**
 * Drops one canary order in the outbox (owned by the agent's account, mtime backdated past
 * minAgeSeconds), runs one pass, then prints one JSON line: the canary's name, the pass's exit code,
 * where the file ended up and `plutus-sync status --json`. Fails unless the canary left the outbox
 * without being quarantined and the pass exited 0.
 */
export function renderCanaryCommand(i: CanaryInput): string {
  for (const p of [i.outbox, i.quarantine]) {
    if (!/^\/[A-Za-z0-9._/-]+$/.test(p)) throw new Error(`canary folder must be a plain absolute path, got ${JSON.stringify(p)}`);
  }
  if (!Number.isInteger(i.minAgeSeconds) || i.minAgeSeconds < 0) throw new Error(`minAgeSeconds must be a whole number, got ${i.minAgeSeconds}`);
  const agent = `sudo -u ${AGENT_ACCOUNT}`;
  return [
    "set -eu",
    'ts="$(date -u +%Y%m%dT%H%M%SZ)"',
    `name="${CANARY_PREFIX}$ts.json"`,
    `file=${shQuote(i.outbox)}/"$name"`,
    `printf '{"orderId":"%s","canary":true,"createdAt":"%s","note":"Synthetic order from the Plutus deployment canary; the ERP ignores files named ${CANARY_PREFIX}*"}\\n' "${CANARY_PREFIX}$ts" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \\`,
    `  | sudo install -o ${AGENT_ACCOUNT} -g ${AGENT_ACCOUNT} -m 0640 /dev/stdin "$file"`,
    `sudo touch -d "@$(( $(date +%s) - ${i.minAgeSeconds} - 60 ))" "$file"`,
    "set +e",
    `${agent} ${AGENT_HOME}/sync_plutus.sh >&2`,
    "rc=$?",
    `status="$(${agent} node ${AGENT_HOME}/plutus-sync.cjs status --config ${AGENT_CONFIG_PATH} --json | tail -n 1)"`,
    "set -e",
    '[ -n "$status" ] || status=null',
    'where=delivered',
    'if [ -e "$file" ]; then where=outbox; fi',
    `if [ -e ${shQuote(i.quarantine)}/"$name" ]; then where=quarantine; fi`,
    `printf '{"canary":"%s","runExitCode":%d,"location":"%s","status":%s}\\n' "$name" "$rc" "$where" "$status"`,
    'if [ "$rc" -ne 0 ] || [ "$where" != delivered ]; then echo "canary $name not delivered (pass exit code $rc, file in $where)" >&2; exit 1; fi',
  ].join("\n");
}

/** What the `canary` stack output holds. */
export interface CanaryResult {
  readonly ran: boolean;
  readonly canary?: string;
  readonly delivered?: boolean;
  readonly runExitCode?: number;
  readonly location?: string;
  readonly lastRun?: unknown;
  readonly detail?: string;
}

export function summarizeCanary(stdout: string | undefined): CanaryResult {
  const r = parseJsonResult(stdout);
  if (!r) return { ran: false, detail: "no canary result (preview, or the step has not run)" };
  const status = (r.status ?? null) as { lastRun?: { exitCode?: number; summary?: unknown; finishedAt?: string } | null } | null;
  return {
    ran: true,
    canary: String(r.canary),
    delivered: r.location === "delivered" && r.runExitCode === 0,
    runExitCode: Number(r.runExitCode),
    location: String(r.location),
    lastRun: status?.lastRun ?? null,
  };
}

export interface WebVmConnection {
  /** The VM's address. */
  readonly host: string;
  /** The cloud-init admin user (passwordless sudo). */
  readonly user: string;
  /** Its private key (secret). */
  readonly privateKey: pulumi.Input<string>;
  /** The VM's pre-generated host public key line (pinned). */
  readonly hostKey: pulumi.Input<string>;
  /** The Hyper-V host as jump host, when Pulumi reaches it over SSH. */
  readonly proxy?: command.types.input.remote.ProxyConnectionArgs;
}

function connectionArgs(c: WebVmConnection): command.types.input.remote.ConnectionArgs {
  return {
    host: c.host,
    port: 22,
    user: c.user,
    privateKey: c.privateKey,
    hostKey: c.hostKey,
    proxy: c.proxy,
    dialErrorLimit: 30,
    perDialTimeout: 20,
  };
}

export interface AgentDeploymentArgs {
  /** SSH to the Ubuntu VM. */
  readonly connection: WebVmConnection;
  /** The verified bundle from `npm run build`. */
  readonly bundle: AgentBundle;
  /** The validated agent configuration. */
  readonly agentConfig: pulumi.Input<AgentConfig>;
  /** The sync account's OpenSSH private key (secret). */
  readonly syncPrivateKey: pulumi.Input<string>;
  /** Outputs of the web VM (UbuntuVm.instance): a rebuilt VM gets the agent again. */
  readonly vmTriggers?: pulumi.Input<unknown>[];
  /** `watch` also installs and starts the plutus-sync-watch service (install.sh --watch); default cron. */
  readonly agentMode?: AgentMode;
}

/**
 * Waits for cloud-init, then installs the bundle in one step (stdin: bundle, config and key).
 *
 * Uninstalling lives in its own resource, `<name>-uninstall`, whose create does nothing and whose
 * delete runs install.sh --uninstall; it has no triggers, so it is never replaced, and its delete
 * runs only when the stack is destroyed. The install step has no delete: a new bundle or config
 * replaces it, and by default Pulumi replaces create-before-delete, so an uninstall there would run
 * *after* the new install and remove it. install.sh upgrades in place, so nothing needs undoing
 * first (an uninstall before each replacement would take the agent away, account and key included,
 * on every config change, and leave none when the new install fails).
 */
export class AgentDeployment extends pulumi.ComponentResource {
  /** SHA-256 of the bundle archive the VM accepts. */
  public readonly bundleSha256: string;
  /** The install step; the canary depends on it. */
  public readonly installed: command.remote.Command;

  constructor(name: string, args: AgentDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:agentDeployment:AgentDeployment", name, {}, opts);
    let create: string;
    try {
      create = renderInstallCommand(args.bundle, args.agentMode ?? "cron");
    } catch (err) {
      throw new pulumi.ResourceError(`${(err as Error).message}; run npm run build first`, this);
    }
    this.bundleSha256 = args.bundle.archiveSha256;
    const connection = connectionArgs(args.connection);
    const vmTriggers = args.vmTriggers ?? [];
    const wait = new command.remote.Command(
      `${name}-wait`,
      { connection, create: renderWaitCommand(), triggers: vmTriggers.length > 0 ? vmTriggers : undefined, addPreviousOutputInEnv: false },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    const uninstall = new command.remote.Command(
      `${name}-uninstall`,
      { connection, create: renderUninstallArmCommand(), delete: renderUninstallCommand(), addPreviousOutputInEnv: false },
      { parent: this, dependsOn: [wait] },
    );
    const configJson = pulumi.output(args.agentConfig).apply((c) => JSON.stringify(c));
    const stdin = pulumi
      .all([pulumi.output(args.agentConfig), pulumi.output(args.syncPrivateKey)])
      .apply(([c, k]) => renderAgentInstallStdin(args.bundle, c as AgentConfig, k));
    this.installed = new command.remote.Command(
      `${name}-install`,
      {
        connection,
        create,
        stdin: pulumi.secret(stdin),
        triggers: [args.bundle.checksum, configJson, ...vmTriggers],
        addPreviousOutputInEnv: false,
      },
      // No delete of its own, so deleting first costs nothing; it matters for a stack deployed by an
      // older program, whose stored agent-install still holds the uninstall as its delete: that
      // must run before the new install, not after it.
      { parent: this, dependsOn: [uninstall], additionalSecretOutputs: ["stdin"], deleteBeforeReplace: true },
    );
    this.registerOutputs({ bundleSha256: this.bundleSha256 });
  }
}

export interface CanaryArgs {
  /** SSH to the Ubuntu VM. */
  readonly connection: WebVmConnection;
  /** The agent's folders and minimum file age. */
  readonly canary: CanaryInput;
  /** Values whose change re-runs the canary (bundle checksum, agent config). */
  readonly triggers: pulumi.Input<unknown>[];
}

/** Drops a canary order, runs one pass and reports what happened. */
export class Canary extends pulumi.ComponentResource {
  public readonly result: pulumi.Output<CanaryResult>;

  constructor(name: string, args: CanaryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:agentDeployment:Canary", name, {}, opts);
    let create: string;
    try {
      create = renderCanaryCommand(args.canary);
    } catch (err) {
      throw new pulumi.ResourceError((err as Error).message, this);
    }
    const run = new command.remote.Command(
      `${name}-run`,
      { connection: connectionArgs(args.connection), create, triggers: args.triggers, addPreviousOutputInEnv: false },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.result = run.stdout.apply(summarizeCanary);
    this.registerOutputs({ result: this.result });
  }
}
