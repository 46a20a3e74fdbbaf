import { parseAgentConfig, ConfigValidationError } from "@plutus/shared";

const valid = {
  outbox: "/var/lib/plutus/outbox",
  archive: "/var/lib/plutus/archive",
  quarantine: "/var/lib/plutus/quarantine",
  stateDir: "/var/lib/plutus/state",
  logDir: "/var/log/plutus",
  minAgeSeconds: 10,
  remote: {
    host: "192.168.50.20",
    port: 22,
    username: "plutus-sync",
    privateKeyPath: "/etc/plutus/id_ed25519",
    hostKeySha256: "SHA256:" + "A".repeat(43),
    inbox: "/C:/Plutus/Inbox",
    staging: "/C:/Plutus/Staging",
  },
};

function problemsOf(value: unknown): readonly string[] {
  try {
    parseAgentConfig(value, "test.json");
  } catch (error) {
    if (error instanceof ConfigValidationError) return error.problems;
    throw error;
  }
  throw new Error("expected the configuration to be rejected");
}

describe("agent configuration schema", () => {
  it("accepts the documented example and fills every default", () => {
    const config = parseAgentConfig(valid);
    expect(config).toEqual({
      ...valid,
      concurrency: 256,
      maxFileBytes: 10 * 1024 * 1024,
      passDeadlineSeconds: 240,
      operationTimeoutSeconds: 30,
      connectTimeoutSeconds: 20,
      retries: 3,
      retryBaseDelayMs: 500,
      logLevel: "info",
      logRetentionDays: 30,
      watch: { settleMs: 200, rescanSeconds: 60 },
      log: { syslog: false, syslogSocket: "/dev/log" },
      health: {
        lastSuccessCriticalMinutes: 15,
        failedRunsWarning: 2,
        failedRunsCritical: 3,
        oldestWaitingWarningMinutes: 10,
        oldestWaitingCriticalMinutes: 30,
        erpInboxMaxAgeMinutes: 30,
      },
      metrics: {},
      alertTimeoutSeconds: 30,
    });
  });

  it("fills the watch section's defaults key by key and rejects bad values by path", () => {
    expect(parseAgentConfig({ ...valid, watch: { settleMs: 50 } }).watch).toEqual({ settleMs: 50, rescanSeconds: 60 });
    expect(problemsOf({ ...valid, watch: { rescanSeconds: 0, settleMs: 1.5, delay: 1 } })).toEqual([
      "watch.settleMs: must be a whole number of milliseconds from 0 to 60000, not a fraction (1.5)",
      "watch.rescanSeconds: must be at least 1 seconds",
      'watch: unknown key(s) "delay"',
    ]);
  });

  it("defaults the port to 22", () => {
    const { port: _omitted, ...remote } = valid.remote;
    expect(parseAgentConfig({ ...valid, remote }).remote.port).toBe(22);
  });

  it("reports every problem at once, by key path", () => {
    const { outbox: _omitted, ...rest } = valid;
    expect(
      problemsOf({ ...rest, minAgeSeconds: -1, extra: true, remote: { ...valid.remote, hostKeySha256: "abc", inbox: "C:\\Plutus\\Inbox" } }),
    ).toEqual([
      "outbox: is required",
      "minAgeSeconds: must be at least 0 seconds",
      "remote.hostKeySha256: must be the OpenSSH form SHA256:<43 base64 characters>, as printed by `ssh-keygen -lf <host key>.pub`",
      "remote.inbox: must start with / (e.g. /C:/Plutus/Inbox, or /Inbox inside a chroot) for the ERP inbox",
      "remote.inbox: must use forward slashes, as SFTP paths do (/C:/Plutus/Inbox)",
      '(top level): unknown key(s) "extra"',
    ]);
  });

  it("rejects relative local paths and a staging folder equal to the inbox", () => {
    expect(problemsOf({ ...valid, archive: "archive", remote: { ...valid.remote, staging: "/C:/plutus/inbox/" } })).toEqual([
      "archive: must be an absolute path (starting with /) for the archive folder",
      "remote.staging: must be a folder other than the inbox (on the same volume), so unverified uploads never show in the inbox",
    ]);
  });

  it("rejects local folders that coincide", () => {
    expect(problemsOf({ ...valid, quarantine: "/var/lib/plutus/outbox/" })).toEqual([
      "quarantine: must differ from outbox (/var/lib/plutus/outbox)",
    ]);
  });

  it("says what type was given when a value has the wrong type, and reads right for the port", () => {
    expect(
      problemsOf({ ...valid, minAgeSeconds: "30", concurrency: 2.5, logLevel: 3, remote: { ...valid.remote, port: "22", host: null, inbox: 7 } }),
    ).toEqual([
      'minAgeSeconds: must be a whole number of seconds from 0 to 86400, not a string ("30")',
      "remote.host: must be the ERP server's host name or IP address, not null",
      'remote.port: must be a port number, a whole number from 1 to 65535, not a string ("22")',
      "remote.inbox: must be the SFTP path of the ERP inbox, e.g. /C:/Plutus/Inbox or /Inbox inside a chroot, not 7",
      "concurrency: must be a whole number of files from 1 to 256, not a fraction (2.5)",
      "logLevel: must be one of error, warn, info, debug",
    ]);
    expect(problemsOf({ ...valid, remote: { ...valid.remote, port: 70000 } })).toEqual(["remote.port: must be at most 65535"]);
  });

  it("checks the supervision sections: health thresholds, metrics, syslog, alertCommand", () => {
    expect(
      problemsOf({
        ...valid,
        health: { failedRunsWarning: 3, failedRunsCritical: 2, erpInboxMaxAgeMinutes: 0, oldestWaitingCriticalMinutes: 5 },
        metrics: { textfileDir: "metrics", listen: "9787" },
        log: { syslog: "yes" },
        alertCommand: "mail -s alert root",
      }),
    ).toEqual([
      "log.syslog: must be true or false, not a string (\"yes\")",
      "health.erpInboxMaxAgeMinutes: must be at least 1 minutes",
      "health.failedRunsCritical: must be at least failedRunsWarning (3)",
      "health.oldestWaitingCriticalMinutes: must be at least oldestWaitingWarningMinutes (10)",
      "metrics.textfileDir: must be an absolute path (starting with /) for the node_exporter textfile folder",
      "metrics.listen: must be HOST:PORT, e.g. 127.0.0.1:9787",
      'alertCommand: must be a list of strings, the program and its arguments (no shell), not a string ("mail -s alert root")',
    ]);
    expect(problemsOf({ ...valid, alertCommand: ["mail", "root"], metrics: { listen: "127.0.0.1:99999" } })).toEqual([
      "metrics.listen: must have a port from 1 to 65535",
      "alertCommand: must start with the absolute path of the program (cron's PATH is short)",
    ]);
    const config = parseAgentConfig({ ...valid, health: { erpInboxMaxAgeMinutes: 60 }, metrics: { listen: "[::1]:9787" }, alertCommand: ["/usr/bin/logger", "-t", "x"] });
    expect(config.health).toMatchObject({ erpInboxMaxAgeMinutes: 60, lastSuccessCriticalMinutes: 15 });
    expect(config.metrics).toEqual({ listen: "[::1]:9787" });
    expect(config.alertCommand).toEqual(["/usr/bin/logger", "-t", "x"]);
  });

  it("names the source in the error message", () => {
    expect(() => parseAgentConfig({}, "/etc/plutus/agent.json")).toThrow(/^invalid configuration in \/etc\/plutus\/agent.json:\n  - outbox: is required/);
  });
});
