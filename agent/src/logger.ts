import winston from "winston";
import DailyRotateFile from "winston-daily-rotate-file";
import { SyslogTransport } from "./syslogTransport";

export type Logger = winston.Logger;

export interface LoggerOptions {
  logDir: string;
  level: string;
  retentionDays: number;
  /** Also send every line to the syslog socket at this path (`log.syslog`). */
  syslogSocket?: string;
}

/**
 * JSON lines with ISO (UTC) timestamps in `<logDir>/plutus-sync-YYYY-MM-DD.log` (the UTC date), rotated daily and
 * kept `retentionDays`. Call `closeLogger` before exiting: winston writes asynchronously.
 */
export function createLogger(options: LoggerOptions): Logger {
  const transport = new DailyRotateFile({
    dirname: options.logDir,
    filename: "plutus-sync-%DATE%.log",
    datePattern: "YYYY-MM-DD",
    maxFiles: `${options.retentionDays}d`,
    auditFile: `${options.logDir}/.plutus-sync-audit.json`,
    utc: true,
  });
  return winston.createLogger({
    level: options.level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { pid: process.pid },
    transports: options.syslogSocket ? [transport, new SyslogTransport(options.syslogSocket)] : [transport],
  });
}

/** A logger for commands that must not write logs (e.g. before the config is known). */
export function createSilentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

export async function closeLogger(logger: Logger): Promise<void> {
  const transports = logger.transports;
  await Promise.all(
    transports.map(
      (transport) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5_000);
          transport.once("finish", () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  // The finish listeners must be registered before end(), which triggers them.
}

export async function endLogger(logger: Logger): Promise<void> {
  const transports = [...logger.transports];
  const closing = closeLogger(logger);
  logger.end();
  await closing;
  // A transport's "finish" can come before its file stream has written the last lines, and the
  // process exits right after this: wait for the file stream itself (bounded).
  await Promise.all(
    transports.map((transport) => {
      const stream = (transport as unknown as { logStream?: { end(callback: () => void): void } }).logStream;
      if (!stream) return undefined;
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5_000);
        stream.end(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }),
  );
}
