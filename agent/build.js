// Builds dist/plutus-sync.cjs (one self-contained file for Node >= 18) and the release bundle
// dist/bundle/: plutus-sync.cjs, sync_plutus.sh, install.sh and SHA256SUMS.
const { build } = require("esbuild");
const { createHash } = require("node:crypto");
const { mkdirSync, readFileSync, writeFileSync, copyFileSync, chmodSync, rmSync } = require("node:fs");
const { join } = require("node:path");

const dist = join(__dirname, "dist");
const bundleDir = join(dist, "bundle");
const agentFile = join(dist, "plutus-sync.cjs");
const scripts = ["sync_plutus.sh", "install.sh"];

async function main() {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(bundleDir, { recursive: true });
  await build({
    entryPoints: [join(__dirname, "src", "cli.ts")],
    outfile: agentFile,
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    banner: { js: "#!/usr/bin/env node" },
    // ssh2's native helpers are optional: it falls back to pure JS when they are absent.
    external: ["cpu-features", "*.node"],
    // The shared package from source: its `import { z } from "zod"` then resolves to zod's ES
    // modules, which esbuild can tree-shake (the CommonJS build loads every locale at start).
    alias: { "@plutus/shared": join(__dirname, "..", "shared", "src", "index.ts") },
    legalComments: "none",
    logLevel: "warning",
  });
  chmodSync(agentFile, 0o755);
  const files = ["plutus-sync.cjs", ...scripts];
  copyFileSync(agentFile, join(bundleDir, "plutus-sync.cjs"));
  for (const script of scripts) copyFileSync(join(__dirname, "scripts", script), join(bundleDir, script));
  for (const file of files) chmodSync(join(bundleDir, file), 0o755);
  const sums = files
    .map((file) => `${createHash("sha256").update(readFileSync(join(bundleDir, file))).digest("hex")}  ${file}\n`)
    .join("");
  writeFileSync(join(bundleDir, "SHA256SUMS"), sums);
  const bundleSha256 = createHash("sha256").update(sums).digest("hex");
  process.stdout.write(`built ${agentFile}\nbundle ${bundleDir} sha256 ${bundleSha256}\n`);
}

main().catch((error) => {
  process.stderr.write(`build failed: ${error.message}\n`);
  process.exit(1);
});
