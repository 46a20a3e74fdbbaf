import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { HostAccessConfig } from "./config";

/*
 * One way to run a .ps1 on the Hyper-V host, locally or over SSH:
 *
 *   command text  = powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand <bootstrap>
 *   stdin         = {"create": {script, parameters, secrets}, "delete": {...}}   (one JSON document)
 *
 * The bootstrap is a fixed, ~1 KB program (it only differs by the literal step name "create" or
 * "delete"): it reads stdin, turns the step's script text into a script block and calls it with the
 * step's parameters splatted onto the script's typed param() block. So:
 *  - no configuration value, script text or secret is ever part of the command line (hostile
 *    values stay data; nothing secret shows in process lists or in the provider's error echo);
 *  - the command line is ~3 KB whatever the script size, far below cmd.exe's 8,191 characters,
 *    so nothing has to be copied to the host first and no -File staging area can go stale;
 *  - no environment variables are needed (Win32-OpenSSH has no AcceptEnv).
 * @pulumi/command hands the same `stdin` to create, update and delete, so the delete step travels
 * in the same document (and is stored, as secret when it holds one, in the state).
 *
 * Shared functions live in helper modules (infra/scripts/*.psm1). A step that lists them in
 * `helpers` gets their texts as its script's `Helpers` parameter, which the script declares and
 * loads with New-Module. The bootstrap stays the same for every step: changing it would change
 * every command line and re-run every create script on the next `pulumi up`.
 */

export type ParamValue = string | number | boolean | readonly string[];

/** One PowerShell operation: a script from infra/scripts and its parameters. */
export interface PowerShellStep {
  /** File name under infra/scripts, e.g. "New-PlutusVm.ps1". */
  readonly script: string;
  /** Non-secret parameters, bound by name to the script's param() block. */
  readonly parameters?: Record<string, pulumi.Input<ParamValue>>;
  /** Secret parameters; they only ever travel on stdin. */
  readonly secrets?: Record<string, pulumi.Input<string>>;
  /** Module file names under infra/scripts (e.g. "PlutusDirect.psm1"); their texts go to the script's `Helpers` parameter. */
  readonly helpers?: readonly string[];
}

export const SCRIPTS_DIR = path.join(__dirname, "scripts");

/** The script parameter that receives the texts of a step's helper modules. */
export const HELPERS_PARAMETER = "Helpers";

/**
 * A script file's text as the program sends and hashes it: no BOM, LF line endings. A Windows
 * checkout (core.autocrlf) has CRLF; hashing that would change every trigger and rebuild the lab.
 */
export function scriptText(raw: string): string {
  return raw.replace(/^\uFEFF/, "").replace(/\r\n/g, "\n");
}

/** The text of a script under infra/scripts (see scriptText). */
export function loadScript(fileName: string): string {
  if (!/^[A-Za-z0-9-]+\.ps1$/.test(fileName)) throw new Error(`not a script file name: ${JSON.stringify(fileName)}`);
  return scriptText(fs.readFileSync(path.join(SCRIPTS_DIR, fileName), "utf8"));
}

/** The text of a helper module under infra/scripts (see scriptText). */
export function loadHelper(fileName: string): string {
  if (!/^[A-Za-z0-9-]+\.psm1$/.test(fileName)) throw new Error(`not a helper module file name: ${JSON.stringify(fileName)}`);
  return scriptText(fs.readFileSync(path.join(SCRIPTS_DIR, fileName), "utf8"));
}

export function sha256Hex(text: string | Buffer): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

export type StepName = "create" | "delete";

/** The PowerShell program behind -EncodedCommand; `step` is one of two fixed literals. */
export function renderBootstrap(step: StepName): string {
  return [
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    "$stepName = '(unread)'",
    "try {",
    "    $buffer = New-Object -TypeName System.IO.MemoryStream",
    "    [System.Console]::OpenStandardInput().CopyTo($buffer)",
    "    $document = [System.Text.Encoding]::UTF8.GetString($buffer.ToArray()) | Microsoft.PowerShell.Utility\\ConvertFrom-Json",
    `    $step = $document.${step}`,
    "    $stepName = [string]$step.name",
    "    $arguments = @{}",
    "    foreach ($property in $step.parameters.PSObject.Properties) { $arguments[$property.Name] = $property.Value }",
    "    foreach ($property in $step.secrets.PSObject.Properties) { $arguments[$property.Name] = $property.Value }",
    "    $script = [System.Management.Automation.ScriptBlock]::Create([string]$step.script)",
    "    & $script @arguments",
    "    exit 0",
    "} catch {",
    "    [System.Console]::Error.WriteLine(('{0} failed: {1}' -f $stepName, $_.Exception.Message))",
    "    exit 1",
    "}",
  ].join("\n");
}

/** UTF-16LE base64, as powershell.exe -EncodedCommand expects. */
export function encodeCommand(script: string): string {
  return Buffer.from(script, "utf16le").toString("base64");
}

/** The whole command line for a step; identical locally (through cmd.exe) and over SSH. */
export function renderCommandLine(step: StepName): string {
  return `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ${encodeCommand(renderBootstrap(step))}`;
}

/** cmd.exe's limit for one command line. */
export const CMD_MAX_CHARS = 8191;

interface ResolvedStep {
  name: string;
  script: string;
  parameters: Record<string, ParamValue>;
  secrets: Record<string, string>;
}

/** JSON with every non-ASCII character escaped, so no console code page can mangle it. */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The stdin document for a command, given resolved steps. */
export function renderStdinDocument(steps: { create: ResolvedStep; delete?: ResolvedStep }): string {
  return asciiJson(steps);
}

/** The last line of stdout that parses as a JSON object, or undefined. */
export function parseJsonResult(stdout: string | undefined): Record<string, unknown> | undefined {
  if (!stdout) return undefined;
  const lines = stdout.replace(/\r/g, "").split("\n").map((l) => l.trim()).filter((l) => l.startsWith("{"));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const value = JSON.parse(lines[i]);
      if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // not the result line
    }
  }
  return undefined;
}

export interface PowerShellCommandArgs {
  /** How to reach the Hyper-V host. */
  readonly host: HostAccessConfig;
  /** The create (ensure) operation; also re-run on update. */
  readonly create: PowerShellStep;
  /** The exact delete operation, if the object must be removed on destroy. */
  readonly delete?: PowerShellStep;
  /** Extra values whose change must replace the object (the scripts' hashes are always included). */
  readonly triggers?: pulumi.Input<unknown>[];
  /** Remove the old object before creating its replacement (named Hyper-V objects). */
  readonly deleteBeforeReplace?: boolean;
}

/** Runs one PowerShell operation (create, and delete on destroy) on the Hyper-V host. */
export class PowerShellCommand extends pulumi.ComponentResource {
  /** Raw stdout of the last create/update run. */
  public readonly stdout: pulumi.Output<string>;
  /** The JSON object the script printed last, if any. */
  public readonly result: pulumi.Output<Record<string, unknown> | undefined>;
  /** SHA-256 of the files involved: create script, its helpers, then delete script, its helpers. */
  public readonly scriptHashes: string[];
  /** The underlying command's id: unknown until it has run, new on every replacement. */
  private readonly runId: pulumi.Output<string>;

  constructor(name: string, args: PowerShellCommandArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:powershell:PowerShellCommand", name, {}, opts);

    const steps: [StepName, PowerShellStep][] = [["create", args.create]];
    if (args.delete) steps.push(["delete", args.delete]);
    const texts = new Map<StepName, { script: string; helpers: string[] }>();
    for (const [step, spec] of steps) {
      if (spec.parameters && HELPERS_PARAMETER in spec.parameters) {
        throw new pulumi.ResourceError(`the ${step} step of ${spec.script} sets the parameter ${HELPERS_PARAMETER}, which the runner fills from \`helpers\`; list the helper files there instead`, this);
      }
      const read = (what: string, fileName: string, load: (f: string) => string) => {
        try {
          return load(fileName);
        } catch (err) {
          throw new pulumi.ResourceError(`cannot read the ${step} ${what} ${fileName} under ${SCRIPTS_DIR}: ${(err as Error).message}; restore it from git`, this);
        }
      };
      texts.set(step, {
        script: read("script", spec.script, loadScript),
        helpers: (spec.helpers ?? []).map((helper) => read("helper", helper, loadHelper)),
      });
    }
    // A helper's hash sits next to its script's: editing a helper re-runs every step that loads it.
    this.scriptHashes = steps.flatMap(([step]) => {
      const { script, helpers } = texts.get(step)!;
      return [script, ...helpers].map((text) => sha256Hex(text));
    });

    const hasSecrets = steps.some(([, spec]) => spec.secrets && Object.keys(spec.secrets).length > 0);
    const resolve = (step: StepName, spec: PowerShellStep) =>
      pulumi
        .all([pulumi.output(spec.parameters ?? {}), pulumi.output(spec.secrets ?? {})])
        .apply(([parameters, secrets]): ResolvedStep => {
          const { script, helpers } = texts.get(step)!;
          return {
            name: `${name} ${step} (${spec.script})`,
            script,
            parameters: { ...(parameters as Record<string, ParamValue>), ...(helpers.length > 0 ? { [HELPERS_PARAMETER]: helpers } : {}) },
            secrets: secrets as Record<string, string>,
          };
        });
    let stdin = pulumi
      .all([resolve("create", args.create), args.delete ? resolve("delete", args.delete) : pulumi.output(undefined)])
      .apply(([create, del]) => renderStdinDocument(del ? { create, delete: del } : { create }));
    if (hasSecrets) stdin = pulumi.secret(stdin);

    const createLine = renderCommandLine("create");
    const deleteLine = args.delete ? renderCommandLine("delete") : undefined;
    for (const line of [createLine, deleteLine]) {
      if (line && line.length > CMD_MAX_CHARS) {
        throw new pulumi.ResourceError(`the rendered command line is ${line.length} characters, over cmd.exe's ${CMD_MAX_CHARS}; shorten the bootstrap`, this);
      }
    }

    const triggers = [...this.scriptHashes, ...(args.triggers ?? [])];
    const childOpts: pulumi.CustomResourceOptions = {
      parent: this,
      dependsOn: opts?.dependsOn,
      deleteBeforeReplace: args.deleteBeforeReplace ?? false,
      additionalSecretOutputs: hasSecrets ? ["stdin"] : undefined,
    };
    let run: command.local.Command | command.remote.Command;
    if (args.host.mode === "local") {
      run = new command.local.Command(
        `${name}-run`,
        { create: createLine, delete: deleteLine, stdin, triggers, interpreter: ["cmd.exe", "/C"], addPreviousOutputInEnv: false },
        childOpts,
      );
    } else {
      run = new command.remote.Command(
        `${name}-run`,
        { connection: hostConnection(args.host), create: createLine, delete: deleteLine, stdin, triggers, addPreviousOutputInEnv: false },
        childOpts,
      );
    }
    this.runId = run.id;
    this.stdout = run.stdout;
    this.result = run.stdout.apply(parseJsonResult);
    this.registerOutputs({ stdout: this.stdout, result: this.result });
  }

  /**
   * `value`, as an Output that depends on this command (its id). Used in another command's inputs
   * and triggers, it makes Pulumi replace that command when this one is replaced (a dependsOn alone
   * does not: deleteBeforeReplace only takes along dependents whose *properties* depend on it).
   */
  public after<T>(value: pulumi.Input<T>): pulumi.Output<T> {
    return pulumi.all([this.runId, pulumi.output(value)]).apply(([, v]) => v as T);
  }
}

/**
 * A secret-derived fingerprint of a secret (scrypt, salted with its purpose): it may sit in triggers
 * so a change of the secret replaces what depends on it, without the secret itself being stored
 * there. The result is still marked secret.
 */
export function secretFingerprint(purpose: string, secret: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(
    pulumi.output(secret).apply((s) => crypto.scryptSync(s, `plutus:${purpose}`, 32, { N: 16384, r: 8, p: 1 }).toString("hex")),
  );
}

/** The SSH connection to the Hyper-V host, with its pinned host key. */
export function hostConnection(host: Extract<HostAccessConfig, { mode: "ssh" }>): command.types.input.remote.ConnectionArgs {
  return {
    host: host.host,
    port: host.port,
    user: host.user,
    privateKey: host.privateKey,
    hostKey: host.hostKey,
    dialErrorLimit: 10,
    perDialTimeout: 30,
  };
}
