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
 *   // seen["agent-wait"].create, seen["agent-copy"].create + .stdin, seen["agent-install"].create + .stdin,
 *   // seen["agent-install"].delete, seen["canary-run"].create
 *
 * tests/infra/harness.ts `runProgram()` does all of this and returns the recorded inputs (secrets
 * unwrapped), so tests/deploy can simply call it with a fixture bundle directory.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { CANARY_PREFIX, type AgentConfig } from "@plutus/shared";
import { type AgentBundle, tarFiles } from "./bundle";
import { parseJsonResult } from "./powershell";

export const AGENT_CONFIG_PATH = "/etc/plutus/agent.json";
export const AGENT_HOME = "/opt/plutus-sync";
export const AGENT_ACCOUNT = "plutus";

/** Single-quotes a value for POSIX sh. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** Where a bundle is unpacked on the VM: POSIX path, built here, never with the local OS's path rules (pulumi-command #888). */
export function remoteBundleDir(checksum: string): string {
  if (!/^[0-9a-f]{64}$/.test(checksum)) throw new Error(`bundle checksum must be 64 hex digits, got ${JSON.stringify(checksum)}`);
  return `/tmp/plutus-sync-bundle-${checksum.slice(0, 12)}`;
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

/** Unpacks the bundle (a base64 tar on stdin) into bundleDir, verifying SHA256SUMS before it appears. */
export function renderCopyCommand(bundleDir: string): string {
  if (!/^\/tmp\/plutus-sync-bundle-[0-9a-f]{12}$/.test(bundleDir)) throw new Error(`unexpected bundle directory ${JSON.stringify(bundleDir)}`);
  const d = shQuote(bundleDir);
  const partial = shQuote(`${bundleDir}.partial`);
  return [
    "set -eu",
    "umask 022",
    `rm -rf ${partial}`,
    `mkdir ${partial}`,
    `base64 -d | tar -x -f - -C ${partial}`,
    `(cd ${partial} && sha256sum --check --quiet SHA256SUMS)`,
    `rm -rf ${d}`,
    `mv ${partial} ${d}`,
    `echo "bundle unpacked in ${bundleDir}"`,
  ].join("\n");
}

/** The stdin of the copy step: the bundle as a base64 tar. */
export function renderCopyStdin(bundle: AgentBundle): string {
  return `${tarFiles(bundle.files).toString("base64")}\n`;
}

export function renderInstallCommand(bundleDir: string): string {
  if (!/^\/tmp\/plutus-sync-bundle-[0-9a-f]{12}$/.test(bundleDir)) throw new Error(`unexpected bundle directory ${JSON.stringify(bundleDir)}`);
  return `sudo bash ${bundleDir}/install.sh --stdin`;
}

/** install.sh --stdin reads exactly this document: the agent configuration and the sync private key. */
export function renderInstallStdin(agentConfig: AgentConfig, privateKey: string): string {
  return `${JSON.stringify({ agentConfig, privateKey })}\n`;
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
}

/** Waits for cloud-init, copies the bundle and runs install.sh (stdin: config + key); delete uninstalls. */
export class AgentDeployment extends pulumi.ComponentResource {
  public readonly bundleDir: string;
  /** The install step; the canary depends on it. */
  public readonly installed: command.remote.Command;

  constructor(name: string, args: AgentDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:agentDeployment:AgentDeployment", name, {}, opts);
    try {
      this.bundleDir = remoteBundleDir(args.bundle.checksum);
    } catch (err) {
      throw new pulumi.ResourceError(`${(err as Error).message}; run npm run build first`, this);
    }
    const connection = connectionArgs(args.connection);
    const base = opts?.dependsOn;
    const vmTriggers = args.vmTriggers ?? [];
    const wait = new command.remote.Command(
      `${name}-wait`,
      { connection, create: renderWaitCommand(), triggers: vmTriggers.length > 0 ? vmTriggers : undefined },
      { parent: this, dependsOn: base },
    );
    const copy = new command.remote.Command(
      `${name}-copy`,
      { connection, create: renderCopyCommand(this.bundleDir), stdin: renderCopyStdin(args.bundle), triggers: [args.bundle.checksum, ...vmTriggers], logging: "stderr" },
      { parent: this, dependsOn: [wait] },
    );
    const configJson = pulumi.output(args.agentConfig).apply((c) => JSON.stringify(c));
    this.installed = new command.remote.Command(
      `${name}-install`,
      {
        connection,
        create: renderInstallCommand(this.bundleDir),
        delete: renderUninstallCommand(),
        stdin: pulumi.secret(pulumi.all([pulumi.output(args.agentConfig), pulumi.output(args.syncPrivateKey)]).apply(([c, k]) => renderInstallStdin(c as AgentConfig, k))),
        triggers: [args.bundle.checksum, configJson, ...vmTriggers],
      },
      { parent: this, dependsOn: [copy], additionalSecretOutputs: ["stdin"] },
    );
    this.registerOutputs({ bundleDir: this.bundleDir });
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
      { connection: connectionArgs(args.connection), create, triggers: args.triggers },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.result = run.stdout.apply(summarizeCanary);
    this.registerOutputs({ result: this.result });
  }
}
