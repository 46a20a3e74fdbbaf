import { z } from "zod";

/** OpenSSH prints SHA-256 fingerprints as `SHA256:` followed by 43 characters of unpadded base64. */
export const HOST_KEY_SHA256_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;

const absoluteLocalPath = (what: string) =>
  z
    .string({ error: `must be the absolute path of the ${what}` })
    .min(1, { error: `must be the absolute path of the ${what}` })
    .refine((p) => p.startsWith("/"), { error: `must be an absolute path (starting with /) for the ${what}` })
    .refine((p) => !p.includes("\0"), { error: "must not contain a NUL character" });

const sftpFolder = (what: string) =>
  z
    .string({ error: `must be the SFTP path of the ${what}, e.g. /C:/Plutus/Inbox or /Inbox inside a chroot` })
    .refine((p) => p.startsWith("/"), {
      error: `must start with / (e.g. /C:/Plutus/Inbox, or /Inbox inside a chroot) for the ${what}`,
    })
    .refine((p) => !p.includes("\\"), { error: "must use forward slashes, as SFTP paths do (/C:/Plutus/Inbox)" })
    .refine((p) => !/[\0\r\n]/.test(p), { error: "must not contain NUL or line breaks" });

/** What a wrong value is, for messages: `a string ("30")`, `null`, `a fraction (2.5)`. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `a string (${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)})`;
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : `a fraction (${value})`;
  if (typeof value === "boolean") return `${value}`;
  if (typeof value === "object") return "an object";
  return typeof value;
}

/** `unit` reads after "a whole number of", e.g. "seconds"; `what` names a count with no unit, e.g. "a port number". */
const wholeNumber = (min: number, max: number, unit: string, what?: string) => {
  const expected = what ? `${what}, a whole number from ${min} to ${max}` : `a whole number of ${unit} from ${min} to ${max}`;
  const given = (issue: { input?: unknown }) => `must be ${expected}, not ${describeValue(issue.input)}`;
  return z
    .number({ error: given })
    .int({ error: given })
    .min(min, { error: `must be at least ${min}${what ? "" : ` ${unit}`}` })
    .max(max, { error: `must be at most ${max}${what ? "" : ` ${unit}`}` });
};

export const remoteSchema = z.strictObject({
  /** Address of the ERP's SFTP server. */
  host: z
    .string({ error: "must be the ERP server's host name or IP address" })
    .regex(/^[A-Za-z0-9.:_-]+$/, { error: "must be a host name or IP address (letters, digits, . : _ -)" }),
  /** TCP port of the ERP's SFTP server. */
  port: wholeNumber(1, 65535, "", "a port number").default(22),
  /** The SFTP-only account the agent logs in as. */
  username: z
    .string({ error: "must be the SFTP account name" })
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: "must be 1-64 letters, digits, dots, dashes or underscores" }),
  /** Private key (OpenSSH or PEM format, no passphrase) readable only by the agent's account. */
  privateKeyPath: absoluteLocalPath("private key file"),
  /** The server's pinned host key, as `ssh-keygen -lf` prints it. */
  hostKeySha256: z
    .string({ error: "must be the ERP host key fingerprint, SHA256:… as printed by ssh-keygen -lf" })
    .regex(HOST_KEY_SHA256_PATTERN, {
      error: "must be the OpenSSH form SHA256:<43 base64 characters>, as printed by `ssh-keygen -lf <host key>.pub`",
    }),
  /** The folder the ERP reads orders from. */
  inbox: sftpFolder("ERP inbox"),
  /** A folder on the same remote volume as the inbox, where uploads are verified before publishing. */
  staging: sftpFolder("staging folder"),
});

/** `plutus-sync watch`: the long-running, low-latency mode (cron keeps running as the safety net). */
export const watchSchema = z.strictObject({
  /**
   * A file written in place (not renamed in) is taken once it parses as a JSON object and its size
   * and modification time have not changed for this long.
   */
  settleMs: wholeNumber(0, 60_000, "milliseconds").default(200),
  /** The outbox is listed again this often (and at start): events can be lost. */
  rescanSeconds: wholeNumber(1, 3_600, "seconds").default(60),
});

export const HEALTH_DEFAULTS = {
  lastSuccessCriticalMinutes: 15,
  failedRunsWarning: 2,
  failedRunsCritical: 3,
  oldestWaitingWarningMinutes: 10,
  oldestWaitingCriticalMinutes: 30,
  erpInboxMaxAgeMinutes: 30,
} as const;

export const healthSchema = z
  .strictObject({
    /** No successful pass for this long: CRITICAL (cron or the watcher stopped, or every pass fails). */
    lastSuccessCriticalMinutes: wholeNumber(1, 10_080, "minutes").default(HEALTH_DEFAULTS.lastSuccessCriticalMinutes),
    /** Consecutive failed runs: WARNING from this many. */
    failedRunsWarning: wholeNumber(1, 1_000, "runs").default(HEALTH_DEFAULTS.failedRunsWarning),
    /** Consecutive failed runs: CRITICAL from this many. */
    failedRunsCritical: wholeNumber(1, 1_000, "runs").default(HEALTH_DEFAULTS.failedRunsCritical),
    /** The oldest order waiting in the outbox: WARNING past this age. */
    oldestWaitingWarningMinutes: wholeNumber(1, 10_080, "minutes").default(HEALTH_DEFAULTS.oldestWaitingWarningMinutes),
    /** The oldest order waiting in the outbox: CRITICAL past this age. */
    oldestWaitingCriticalMinutes: wholeNumber(1, 10_080, "minutes").default(HEALTH_DEFAULTS.oldestWaitingCriticalMinutes),
    /** A file older than this in the ERP inbox: WARNING, the ERP has stopped taking orders. */
    erpInboxMaxAgeMinutes: wholeNumber(1, 10_080, "minutes").default(HEALTH_DEFAULTS.erpInboxMaxAgeMinutes),
  })
  .superRefine((health, ctx) => {
    if (health.failedRunsCritical < health.failedRunsWarning) {
      ctx.addIssue({ code: "custom", path: ["failedRunsCritical"], message: `must be at least failedRunsWarning (${health.failedRunsWarning})` });
    }
    if (health.oldestWaitingCriticalMinutes < health.oldestWaitingWarningMinutes) {
      ctx.addIssue({ code: "custom", path: ["oldestWaitingCriticalMinutes"], message: `must be at least oldestWaitingWarningMinutes (${health.oldestWaitingWarningMinutes})` });
    }
  });

export const metricsSchema = z.strictObject({
  /** node_exporter's textfile collector folder: plutus_sync.prom is written there after each pass. */
  textfileDir: absoluteLocalPath("node_exporter textfile folder").optional(),
  /** Watch mode serves /metrics here, e.g. 127.0.0.1:9787. */
  listen: z
    .string({ error: (issue) => `must be HOST:PORT, e.g. 127.0.0.1:9787, not ${describeValue(issue.input)}` })
    .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/, { error: "must be HOST:PORT, e.g. 127.0.0.1:9787", abort: true })
    .refine((v) => { const port = Number(v.slice(v.lastIndexOf(":") + 1)); return port >= 1 && port <= 65535; }, { error: "must have a port from 1 to 65535" })
    .optional(),
});

export const logSchema = z.strictObject({
  /** Also send every log line to the local syslog (tag plutus-sync, JSON message). */
  syslog: z.boolean({ error: (issue) => `must be true or false, not ${describeValue(issue.input)}` }).default(false),
  /** The syslog socket; another path only for tests or a chroot. */
  syslogSocket: absoluteLocalPath("syslog socket").default("/dev/log"),
});

export const agentConfigSchema = z
  .strictObject({
    /** Where the web shop writes order files. */
    outbox: absoluteLocalPath("outbox folder"),
    /** Delivered files, by delivery date. */
    archive: absoluteLocalPath("archive folder"),
    /** Files that cannot be delivered, each with a .reason beside it. */
    quarantine: absoluteLocalPath("quarantine folder"),
    /** Journal, lock and last-run status. */
    stateDir: absoluteLocalPath("state folder"),
    /** Rotated JSON-lines logs. */
    logDir: absoluteLocalPath("log folder"),
    /** A file is taken only once its last change is at least this old. */
    minAgeSeconds: wholeNumber(0, 86_400, "seconds"),
    remote: remoteSchema,
    /** Files uploaded at the same time over the one SFTP channel. */
    concurrency: wholeNumber(1, 256, "files").default(256),
    /** Larger files are quarantined. */
    maxFileBytes: wholeNumber(1, 1024 * 1024 * 1024, "bytes").default(10 * 1024 * 1024),
    /** A pass stops starting new work at this point and ends; keep it under the cron interval. */
    passDeadlineSeconds: wholeNumber(5, 3_600, "seconds").default(240),
    /** While requests are outstanding, some reply must come this often, or the connection is torn down (a request may wait longer behind others). */
    operationTimeoutSeconds: wholeNumber(1, 600, "seconds").default(30),
    /** TCP connect plus SSH handshake and authentication. */
    connectTimeoutSeconds: wholeNumber(1, 300, "seconds").default(20),
    /** Reconnects and re-tries of a file within one pass after a transient error. */
    retries: wholeNumber(0, 20, "retries").default(3),
    /** First back-off delay; doubles after each retry. */
    retryBaseDelayMs: wholeNumber(0, 60_000, "milliseconds").default(500),
    logLevel: z.enum(["error", "warn", "info", "debug"], { error: "must be one of error, warn, info, debug" }).default("info"),
    /** Days of logs kept. */
    logRetentionDays: wholeNumber(1, 3_650, "days").default(30),
    watch: watchSchema.default({ settleMs: 200, rescanSeconds: 60 }),
    /** Where log lines go besides the daily files. */
    log: logSchema.default({ syslog: false, syslogSocket: "/dev/log" }),
    /** Thresholds of `plutus-sync health`. */
    health: healthSchema.default(HEALTH_DEFAULTS),
    /** Prometheus metrics. */
    metrics: metricsSchema.default({}),
    /** A program run (argv, no shell) with a JSON event on stdin whenever the health state changes. */
    alertCommand: z
      .array(z.string({ error: (issue) => `must be a list of strings (program and arguments), not one holding ${describeValue(issue.input)}` }), {
        error: (issue) => `must be a list of strings, the program and its arguments (no shell), not ${describeValue(issue.input)}`,
      })
      .min(1, { error: "must name at least the program to run" })
      .refine((argv) => argv[0].startsWith("/"), { error: "must start with the absolute path of the program (cron's PATH is short)" })
      .refine((argv) => argv.every((a) => !a.includes("\0")), { error: "must not contain a NUL character" })
      .optional(),
    /** An alert command still running after this is killed. */
    alertTimeoutSeconds: wholeNumber(1, 600, "seconds").default(30),
  })
  .superRefine((config, ctx) => {
    const local = ["outbox", "archive", "quarantine", "stateDir"] as const;
    for (let i = 0; i < local.length; i++) {
      for (let j = i + 1; j < local.length; j++) {
        if (trimSlash(config[local[i]]) === trimSlash(config[local[j]])) {
          ctx.addIssue({ code: "custom", path: [local[j]], message: `must differ from ${local[i]} (${config[local[i]]})` });
        }
      }
    }
    if (trimSlash(config.remote.inbox).toLowerCase() === trimSlash(config.remote.staging).toLowerCase()) {
      ctx.addIssue({
        code: "custom",
        path: ["remote", "staging"],
        message: "must be a folder other than the inbox (on the same volume), so unverified uploads never show in the inbox",
      });
    }
  });

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}

/** The configuration as written in the JSON file (tuning keys optional). */
export type AgentConfigInput = z.input<typeof agentConfigSchema>;
/** The configuration with every default filled in. */
export type AgentConfig = z.output<typeof agentConfigSchema>;

export class ConfigValidationError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigValidationError";
  }
}

/** Validates a parsed configuration object; every problem is reported at once, by key path. */
export function parseAgentConfig(value: unknown, source = "configuration"): AgentConfig {
  const result = agentConfigSchema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  throw new ConfigValidationError(source, result.error.issues.map((issue) => describeIssue(issue, value)));
}

function isMissing(root: unknown, path: readonly PropertyKey[]): boolean {
  let node = root;
  for (const key of path) {
    if (typeof node !== "object" || node === null || !Object.prototype.hasOwnProperty.call(node, key)) return true;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node === undefined;
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const where = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
  if (issue.code === "unrecognized_keys") return `${where}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
  if (issue.code === "invalid_type" && isMissing(root, issue.path)) return `${where}: is required`;
  // A type error says what was given, so "30" (a string) is told apart from 30.
  if (issue.code === "invalid_type" && !/, not /.test(issue.message)) return `${where}: ${issue.message}, not ${describeValue(issue.input)}`;
  return `${where}: ${issue.message}`;
}
