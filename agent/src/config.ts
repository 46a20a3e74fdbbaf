import { promises as fs } from "node:fs";
import { parseAgentConfig, ConfigValidationError, AgentConfig } from "@plutus/shared";
import { ConfigError, errorMessage } from "./errors";

/** Reads and validates the configuration file. Every problem becomes a ConfigError (exit 2). */
export async function loadConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await fs.readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read configuration ${path}: ${errorMessage(error)}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new ConfigError(`configuration ${path} is not valid JSON: ${errorMessage(error)}`, { cause: error });
  }
  try {
    return parseAgentConfig(value, path);
  } catch (error) {
    if (error instanceof ConfigValidationError) throw new ConfigError(error.message, { cause: error });
    throw error;
  }
}

/** The private key must be a regular file only its owner can read: ssh refuses anything looser too. */
export async function readPrivateKey(path: string): Promise<Buffer> {
  let stat;
  try {
    stat = await fs.stat(path);
  } catch (error) {
    throw new ConfigError(`cannot read private key ${path}: ${errorMessage(error)}`, { cause: error });
  }
  if (!stat.isFile()) throw new ConfigError(`private key ${path} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
    throw new ConfigError(`private key ${path} is readable by group or others (mode ${mode}); run: chmod 600 ${path}`);
  }
  try {
    return await fs.readFile(path);
  } catch (error) {
    throw new ConfigError(`cannot read private key ${path}: ${errorMessage(error)}`, { cause: error });
  }
}
