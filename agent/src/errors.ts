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

/** The local state folder cannot be used: no journal, so nothing may be sent. */
export class StateError extends AgentError {
  readonly exitCode = ExitCode.ConfigError;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errno-style code of a Node or ssh2 error, if any. */
export function errorCode(error: unknown): string | number | undefined {
  return typeof error === "object" && error !== null && "code" in error ? (error as { code: string | number }).code : undefined;
}
