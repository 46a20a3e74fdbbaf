#!/usr/bin/env node
/*
 * Many badly named files against the agent (issue 14, item 3): the code of a git ref (default
 * `main`, before the fix) side by side with the working tree.
 *
 *   node bench/junkNames.js [--ref main] [--old-sizes 4000,8000,16000] [--new-sizes 8000,16000,32000,100000]
 *                           [--junk 100000] [--old-limit-seconds 120] [--deadline-seconds 60] [--pass-only]
 *
 * 1. Listing: `listOrderNames` of each version over N names that are not UTF-8 plus one order:
 *    time taken and the longest time the event loop was blocked (a timer could not fire).
 * 2. A real pass of each bundle (real sshd, like the integration tests) with `--junk` such names
 *    plus one valid order: is the order delivered, and how long does the pass take. The old
 *    bundle is killed after --old-limit-seconds.
 *
 * Needs root (the sshd fixture makes a chroot and a system account). Builds with esbuild (a dev
 * dependency) under bench/.build/, so node_modules resolve as in the repository.
 */
"use strict";
const { buildSync } = require("esbuild");
const { execFileSync, spawnSync } = require("node:child_process");
const { mkdirSync, rmSync } = require("node:fs");
const { join } = require("node:path");

const REPO = join(__dirname, "..");
const ARGV = process.argv.slice(2);
const option = (name, fallback) => {
  const i = ARGV.indexOf(name);
  return i >= 0 && ARGV[i + 1] !== undefined ? ARGV[i + 1] : fallback;
};
const ref = option("--ref", "main");
const build = join(__dirname, ".build", "junk");
const oldTree = join(build, "old-tree");

rmSync(build, { recursive: true, force: true });
mkdirSync(oldTree, { recursive: true });
// The old code exactly as committed at the ref.
const archive = execFileSync("git", ["-C", REPO, "archive", ref, "agent/src", "shared/src"]);
execFileSync("tar", ["-x", "-C", oldTree], { input: archive });

const common = { bundle: true, platform: "node", target: "node18", format: "cjs", external: ["cpu-features", "*.node"], logLevel: "warning" };
const versions = { old: oldTree, new: REPO };
for (const [version, tree] of Object.entries(versions)) {
  const alias = { "@plutus/shared": join(tree, "shared", "src", "index.ts") };
  buildSync({ ...common, alias, entryPoints: [join(tree, "agent", "src", "cli.ts")], outfile: join(build, `${version}-agent.cjs`) });
  buildSync({ ...common, alias, entryPoints: [join(tree, "agent", "src", "orderFile.ts")], outfile: join(build, `${version}-orderFile.cjs`) });
}
buildSync({ ...common, entryPoints: [join(__dirname, "junkNames.ts")], outfile: join(build, "runner.cjs"), packages: "external" });
const result = spawnSync(process.execPath, [join(build, "runner.cjs"), ...ARGV], {
  stdio: "inherit",
  env: { ...process.env, JUNK_BENCH_BUILD: build, JUNK_BENCH_REF: ref },
});
process.exit(result.status ?? 1);
