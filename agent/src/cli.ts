import { parseArgs } from "node:util";
import { promises as fs, constants } from "node:fs";
import { ExitCode, type AgentConfig, type RunSummary } from "@plutus/shared";
import { loadConfig, readPrivateKey } from "./config";
import { createLogger, endLogger, Logger } from "./logger";
import { runPass } from "./pass";
import { runWatch } from "./watch";
import { readStatus, formatStatus } from "./status";
import { runCheck } from "./check";
import { resolveInDoubt, type Decision } from "./resolve";
import { repairJournal } from "./repair";
import { writeCanary, locateCanary, describeCanary } from "./canary";
import { recordFailedRun } from "./stateFiles";
import { AgentError, ConfigError, StateError, UsageError, errorMessage, printable } from "./errors";
import { assessHealth, healthJson, unknownHealth, type HealthReport } from "./health";
import { acknowledgeQuarantine } from "./quarantineAck";
import { superviseAfterPass } from "./supervise";

const VERSION = "0.1.0";
const USAGE = `plutus-sync ${VERSION}: delivers order files from the outbox to the ERP inbox over SFTP, exactly once

usage: plutus-sync <command> --config FILE [--json]
       plutus-sync resolve --config FILE NAME --delivered|--resend [--json]

commands:
  run             one delivery pass (what cron runs every 5 minutes)
  watch           deliver each order as soon as it is complete, until SIGTERM/SIGINT (the systemd
                  service plutus-sync-watch); cron's run stays the safety net
  status          last run, files waiting in the outbox, quarantined and in-doubt files
  check           validate the configuration, key permissions, connection, host key, inbox and staging
  health          one-line verdict for Nagios/Icinga: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
  ack-quarantine  mark the files now in quarantine as seen, so health stops warning about them
  resolve         settle an in-doubt order after checking the ERP: --delivered (it arrived: archive it)
                  or --resend (it never arrived: the next run sends it again)
  repair          make a damaged journal usable: read what can be read, check each order it may have
                  recorded against the ERP, hold in doubt what cannot be decided; then runs go on
  canary          write a test order into the outbox as the web shop would, run one pass, say where it went
  help            this text (also -h, --help)
  version         the version (also -V, --version)

--json prints the result as JSON (run: as its last line).

exit codes: 0 ok, 1 a file could not be delivered (it waits for the next pass),
            2 configuration or usage error, 3 cannot connect or authenticate, or host key mismatch
            (health: the Nagios states above)`;

const COMMANDS = ["run", "watch", "status", "check", "health", "ack-quarantine", "resolve", "repair", "canary"] as const;

type Invocation =
  | { command: Exclude<(typeof COMMANDS)[number], "resolve">; configPath: string; json: boolean }
  | { command: "resolve"; configPath: string; json: boolean; name: string; decision: Decision };

function parseInvocation(argv: string[]): Invocation | { command: "help" | "version"; json: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
        delivered: { type: "boolean" },
        resend: { type: "boolean" },
      },
    });
  } catch (error) {
    throw new UsageError(`${errorMessage(error)}\n${USAGE}`);
  }
  const json = parsed.values.json === true;
  const [command, ...extra] = parsed.positionals;
  if (parsed.values.help || command === "help") return { command: "help", json };
  if (parsed.values.version || command === "version") return { command: "version", json };
  if (!(COMMANDS as readonly string[]).includes(command ?? "")) {
    throw new UsageError(`${command === undefined ? "no command given" : `unknown command "${command}"`}\n${USAGE}`);
  }
  const { delivered, resend } = parsed.values;
  if (command !== "resolve" && (delivered || resend)) throw new UsageError(`--delivered and --resend belong to resolve\n${USAGE}`);
  const names = command === "resolve" ? extra.slice(0, 1) : [];
  if (extra.length > names.length) throw new UsageError(`unexpected argument "${extra[names.length]}"\n${USAGE}`);
  if (!parsed.values.config) throw new UsageError(`--config FILE is required\n${USAGE}`);
  const base = { configPath: parsed.values.config, json };
  if (command !== "resolve") return { command: command as Exclude<Invocation["command"], "resolve">, ...base };
  if (names.length === 0) throw new UsageError(`resolve needs the name of the in-doubt order (plutus-sync status lists them)\n${USAGE}`);
  if (delivered === resend) throw new UsageError(`resolve needs exactly one of --delivered or --resend\n${USAGE}`);
  return { command, ...base, name: names[0], decision: delivered ? "delivered" : "resend" };
}

export function describeSummary(summary: RunSummary): string {
  const extra = [
    summary.recovered > 0 ? `, ${summary.recovered} recovered` : "",
    (summary.inDoubt ?? 0) > 0 ? `, ${summary.inDoubt} in doubt (see plutus-sync status; settle with plutus-sync resolve)` : "",
    (summary.renameRefused ?? 0) > 0 ? `, ${summary.renameRefused} renames refused` : "",
    summary.archivePending > 0 ? `, ${summary.archivePending} awaiting archive` : "",
  ].join("");
  return `plutus-sync: ${summary.delivered}/${summary.found} delivered, ${summary.failed} failed, ${summary.quarantined} quarantined, ${summary.deferred} deferred${extra} in ${(summary.durationMs / 1000).toFixed(1)} s`;
}

async function run(invocation: Invocation): Promise<number> {
  const config = await loadConfig(invocation.configPath);
  if (invocation.command === "status") {
    const report = await readStatus(config);
    process.stdout.write((invocation.json ? JSON.stringify(report) : formatStatus(report)) + "\n");
    return ExitCode.Ok;
  }
  if (invocation.command === "health") return printHealth(await assessHealth(config), invocation.json);
  if (invocation.command === "ack-quarantine") {
    const ack = await acknowledgeQuarantine(config.quarantine, config.stateDir).catch((error) => {
      throw new StateError(`cannot record the acknowledgement in ${config.stateDir}: ${errorMessage(error)}`, { cause: error });
    });
    process.stdout.write(invocation.json ? JSON.stringify(ack) + "\n" : `acknowledged ${ack.acknowledged} quarantined file(s), ${ack.newlyAcknowledged} of them new\n`);
    return ExitCode.Ok;
  }
  if (invocation.command === "resolve") {
    const log = await openLog(config);
    try {
      const outcome = await resolveInDoubt(config, invocation.name, invocation.decision, log);
      process.stdout.write(invocation.json ? JSON.stringify({ file: invocation.name, decision: invocation.decision, outcome }) + "\n" : `plutus-sync: ${outcome}\n`);
    } finally {
      await endLogger(log);
    }
    return ExitCode.Ok;
  }
  if (invocation.command === "check") {
    const privateKey = await readPrivateKey(config.remote.privateKeyPath);
    const checks: string[] = [];
    await runCheck(config, privateKey, (line) => (invocation.json ? checks.push(line) : process.stdout.write(line + "\n")));
    process.stdout.write(invocation.json ? JSON.stringify({ ok: true, checks }) + "\n" : "OK\n");
    return ExitCode.Ok;
  }
  if (invocation.command === "watch") return watch(config, await readPrivateKey(config.remote.privateKeyPath));
  if (invocation.command === "repair") {
    const privateKey = await readPrivateKey(config.remote.privateKeyPath);
    const log = await openLog(config);
    try {
      const report = await repairJournal(config, privateKey, log);
      for (const line of report.lines) process.stdout.write(`plutus-sync: ${line}\n`);
      if (report.inDoubt + report.failed === 0) return ExitCode.Ok;
      process.stdout.write(`plutus-sync: runs may go on; ${report.inDoubt} in doubt (settle each with plutus-sync resolve), ${report.failed} left for the next run\n`);
      return ExitCode.DeliveryFailed;
    } finally {
      await endLogger(log);
    }
  }
  return runOnePass(config, invocation);
}

/** `run` and `canary`: one pass; an error that stops it before it ends is recorded for `status`. */
async function runOnePass(config: AgentConfig, invocation: Invocation): Promise<ExitCode> {
  const startedAt = new Date();
  let log: Logger | undefined;
  let inPass = false;
  try {
    log = await openLog(config);
    const privateKey = await readPrivateKey(config.remote.privateKeyPath);
    // A pass must end before the next cron tick whatever happens; this is the last line of defence.
    const watchdog = setTimeout(() => {
      process.stderr.write(`plutus-sync: pass exceeded its deadline of ${config.passDeadlineSeconds} s; exiting\n`);
      process.exit(ExitCode.DeliveryFailed);
    }, (config.passDeadlineSeconds + 15) * 1000);
    watchdog.unref();
    const passLog = log;
    inPass = true;
    if (invocation.command !== "canary") return await runAndReport(invocation.json, () => runPass(config, privateKey, passLog), passLog, (result) => superviseAfterPass(config, result, passLog));
    const name = await writeCanary(config);
    const code = await runAndReport(false, () => runPass(config, privateKey, passLog), passLog, (result) => superviseAfterPass(config, result, passLog));
    const location = await locateCanary(config, name, startedAt);
    passLog.info("canary", { event: "canary", file: name, ...location, exitCode: code });
    process.stdout.write(`plutus-sync: ${describeCanary(name, location, code)}\n`);
    if (invocation.json) process.stdout.write(JSON.stringify({ canary: name, ...location, runExitCode: code }) + "\n");
    return location.where === "delivered" ? ExitCode.Ok : code === ExitCode.Ok ? ExitCode.DeliveryFailed : code;
  } catch (error) {
    if (error instanceof AgentError) {
      // runAndReport logged what went wrong inside the pass.
      if (!inPass) log?.error("run failed before its pass could start", { event: "run-failed", error: error.message, exitCode: error.exitCode });
      await recordFailedRun(config.stateDir, startedAt, error.exitCode, error.message);
    }
    throw error;
  } finally {
    if (log) await endLogger(log);
  }
}

async function watch(config: AgentConfig, privateKey: Buffer): Promise<ExitCode> {
  const log = await openLog(config);
  try {
    return await runWatch(config, privateKey, log, {
      onHung: (message) => {
        log.error(message, { event: "watch-hung" });
        process.stderr.write(`plutus-sync: ${message}; exiting (systemd restarts the watcher)\n`);
        process.exit(ExitCode.DeliveryFailed);
      },
    });
  } catch (error) {
    log.error("watch failed", { event: "watch-failed", error: errorMessage(error), exitCode: error instanceof AgentError ? error.exitCode : ExitCode.DeliveryFailed });
    throw error;
  } finally {
    // SIGTERM to exit stays under 10 s even if the log cannot be flushed.
    setTimeout(() => process.exit(ExitCode.DeliveryFailed), 2_500).unref();
    await endLogger(log);
  }
}

async function openLog(config: AgentConfig): Promise<Logger> {
  await fs.mkdir(config.logDir, { recursive: true, mode: 0o750 }).catch(() => undefined);
  await fs.access(config.logDir, constants.W_OK).catch((error) => {
    throw new ConfigError(`log folder ${config.logDir} is not writable: ${errorMessage(error)}`);
  });
  return createLogger({ logDir: config.logDir, level: config.logLevel, retentionDays: config.logRetentionDays, ...(config.log.syslog ? { syslogSocket: config.log.syslogSocket } : {}) });
}

async function runAndReport(
  json: boolean,
  pass: () => ReturnType<typeof runPass>,
  log: Logger,
  supervise: (result: Awaited<ReturnType<typeof runPass>>) => Promise<unknown>,
): Promise<ExitCode> {
  let result;
  try {
    result = await pass();
  } catch (error) {
    log.error("pass failed", { event: "pass-failed", error: errorMessage(error), exitCode: error instanceof AgentError ? error.exitCode : ExitCode.DeliveryFailed });
    throw error;
  }
  const { summary, exitCode, connectError } = result;
  log.info("pass finished", { event: "pass", exitCode, ...summary, ...(connectError ? { error: connectError.message } : {}) });
  await supervise(result);
  if (connectError) process.stderr.write(`plutus-sync: ${connectError.message}\n`);
  for (const { name, reason } of result.inDoubt ?? []) process.stderr.write(`plutus-sync: in doubt: ${printable(name)}: ${printable(reason, 2000)}\n`);
  if (summary.skippedLocked) process.stderr.write("plutus-sync: another pass holds the lock; nothing done\n");
  process.stdout.write(describeSummary(summary) + "\n");
  if (json) {
    const { found, delivered, failed, quarantined, deferred, durationMs, archivePending, recovered, inDoubt = 0, renameRefused = 0 } = summary;
    process.stdout.write(JSON.stringify({ found, delivered, failed, quarantined, deferred, durationMs, archivePending, recovered, inDoubt, renameRefused, ...(summary.skippedLocked ? { skippedLocked: true } : {}) }) + "\n");
  }
  return exitCode;
}

function printHealth(report: HealthReport, json: boolean): number {
  process.stdout.write((json ? JSON.stringify(healthJson(report)) : report.line) + "\n");
  return report.exitCode;
}

/** The one place where errors become exit codes. */
export async function main(argv: string[]): Promise<number> {
  let invocation: ReturnType<typeof parseInvocation> | undefined;
  try {
    invocation = parseInvocation(argv);
    if (invocation.command === "help") {
      process.stdout.write(USAGE + "\n");
      return ExitCode.Ok;
    }
    if (invocation.command === "version") {
      process.stdout.write(invocation.json ? JSON.stringify({ name: "plutus-sync", version: VERSION }) + "\n" : `plutus-sync ${VERSION}\n`);
      return ExitCode.Ok;
    }
    return await run(invocation as Invocation);
  } catch (error) {
    // A monitoring system reads any failure of the check itself as UNKNOWN (3), with the reason.
    if (invocation?.command === "health") return printHealth(unknownHealth(errorMessage(error)), invocation.json);
    if (error instanceof AgentError) {
      process.stderr.write(`plutus-sync: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`plutus-sync: unexpected error: ${error instanceof Error ? error.stack : String(error)}\n`);
    return ExitCode.DeliveryFailed;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    // Logs are flushed and stdout/stderr are synchronous on Linux: end now, so no leftover
    // handle (a socket still closing, a keepalive timer) can keep a cron job alive.
    process.exit(code);
  });
}
