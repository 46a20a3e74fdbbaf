#!/usr/bin/env node
// Bootstrap for `npm run chaos`: bundles the TypeScript runner with esbuild (already a dev
// dependency) next to this file, so `__dirname` and node_modules resolve as in the repository,
// then runs it. Arguments pass through (--long, --seed N, --only NAME).
const { buildSync } = require("esbuild");
const { spawnSync } = require("node:child_process");
const { join } = require("node:path");

const outfile = join(__dirname, ".build", "chaos.cjs");
buildSync({
  entryPoints: [join(__dirname, "main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  target: "node18",
  format: "cjs",
  packages: "external",
  logLevel: "warning",
});
const result = spawnSync(process.execPath, [outfile, ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(result.status ?? 1);
