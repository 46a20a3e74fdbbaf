import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { spawnSync } from "node:child_process";

const GUIDE = resolve(__dirname, "../../docs/operations.md");

/** The `sh` (or `lang`) blocks of one section of the operations guide (up to the next heading), in order. */
export function operationsGuideBlocks(heading: string, lang = "sh"): string[] {
  const guide = readFileSync(GUIDE, "utf8");
  const start = guide.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`operations guide has no section "${heading}"`);
  const section = guide.slice(start + heading.length + 2).split(/\n#{2,3} /)[0];
  return [...section.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]);
}

/**
 * The commands of a block, one per entry, for blocks that list alternatives (one line each):
 * comment-only lines dropped, indentation and `\` continuations joined; a trailing comment stays
 * (the shell ignores it).
 */
export function guideCommands(block: string): string[] {
  return block
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** A block with the paths and names of a real installation replaced by the test's: `mapping` in order, longest strings first where one contains another. */
export function mapGuideBlock(block: string, mapping: [string, string][]): string {
  let script = block;
  for (const [from, to] of mapping) script = script.replaceAll(from, to);
  return script;
}

export interface GuideRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a block of the guide as written (bash -euo pipefail), with the paths and names of a real
 * installation replaced by the test's (see mapGuideBlock).
 */
export function runGuideBlock(block: string, mapping: [string, string][], env: Record<string, string> = {}, cwd?: string): GuideRun {
  const script = mapGuideBlock(block, mapping);
  const result = spawnSync("bash", ["--norc", "--noprofile", "-euo", "pipefail", "-c", script], {
    stdio: ["ignore", "pipe", "pipe"],
    cwd,
    env: { PATH: process.env.PATH, ...env },
    encoding: "utf8",
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
