import { ExitCode } from "@plutus/shared";

/** Base of every error the agent expects; `exitCode` is what cli.ts exits with. */
export abstract class AgentError extends Error {
  abstract readonly exitCode: ExitCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Wrong command line. */
export class UsageError extends AgentError {
  readonly exitCode = ExitCode.ConfigError;
}

/** The configuration file, a folder it names, or the private key is not usable. */
export class ConfigError extends AgentError {
  readonly exitCode = ExitCode.ConfigError;
}

/** TCP, SSH handshake or authentication failed: nothing was sent. */
export class ConnectError extends AgentError {
  readonly exitCode = ExitCode.ConnectFailed;
}

/** The server presented a host key other than the pinned one: nothing was sent. */
export class HostKeyMismatchError extends ConnectError {
  constructor(
    readonly expected: string,
    readonly presented: string,
    host: string,
  ) {
    super(
      `host key mismatch for ${host}: expected ${expected}, server presented ${presented}; nothing was sent. ` +
        "If the ERP's host key was changed on purpose, update remote.hostKeySha256.",
    );
  }
}

/** The server refused our key: final for the pass (retrying would only repeat the refusal). */
export class AuthenticationError extends ConnectError {}

/** A remote operation failed; the file waits for a retry or the next pass. */
export class TransferError extends AgentError {
  readonly exitCode = ExitCode.DeliveryFailed;
}

/** A request got no answer in time or the connection dropped: its outcome is unknown. */
export class OutcomeUnknownError extends TransferError {}

/**
 * The agent cannot tell whether an order reached the ERP (its staging folder cannot be proven to be
 * the one the upload went to). The order stays in the outbox, is never re-sent on a guess, and
 * waits for an operator's `plutus-sync resolve`.
 */
export class InDoubtError extends TransferError {}

/**
 * The server sent more than any honest server would (an endless listing, a read answered a byte
 * at a time): refused before it can exhaust the agent's memory or time.
 */
export class HostileReplyError extends TransferError {}

/** The local state folder cannot be used: no journal, so nothing may be sent. */
export class StateError extends AgentError {
  readonly exitCode = ExitCode.ConfigError;
}

/** A file in the state folder exists but is not what the agent writes there (torn, edited, wrong shape). */
export class DamagedStateFileError extends StateError {}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errno-style code of a Node or ssh2 error, if any. */
export function errorCode(error: unknown): string | number | undefined {
  return typeof error === "object" && error !== null && "code" in error ? (error as { code: string | number }).code : undefined;
}

/** C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows. */
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function hasControlCharacters(text: string): boolean {
  CONTROL_CHARACTERS.lastIndex = 0;
  return CONTROL_CHARACTERS.test(text);
}

/**
 * Text that came from outside (a server's banner, version string, DISCONNECT or status message),
 * made safe to print: control characters (newlines, ANSI/OSC escapes, C1 codes, bidi overrides)
 * become visible `\xNN` / `\u{NNNN}` escapes, so it can neither forge log or syslog lines nor
 * drive a terminal; long text is cut.
 */
export function printable(text: string, maxLength = 500): string {
  const escaped = text.replace(CONTROL_CHARACTERS, (c) => {
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
  return escaped.length > maxLength ? `${escaped.slice(0, maxLength)}… (${escaped.length - maxLength} more characters)` : escaped;
}
