// Builds dist/plutus-sync.cjs (one self-contained file for Node >= 18) and the release bundle
// dist/bundle/: plutus-sync.cjs, sync_plutus.sh, install.sh and SHA256SUMS.
const { build } = require("esbuild");
const { createHash } = require("node:crypto");
const { mkdirSync, readFileSync, writeFileSync, chmodSync, rmSync } = require("node:fs");
const { join } = require("node:path");

const dist = join(__dirname, "dist");
const agentFile = join(dist, "plutus-sync.cjs");
const scripts = ["sync_plutus.sh", "install.sh"];

/**
 * A shell script as it must ship: LF line endings. A Windows checkout (core.autocrlf=true) turns
 * LF into CRLF, and bash then fails on `set -euo pipefail\r`; CRLF is turned back into LF, and a
 * CR anywhere else is refused.
 */
function shellScriptForBundle(name, content) {
  const lf = Buffer.from(content.toString("latin1").replace(/\r\n/g, "\n"), "latin1");
  const stray = lf.indexOf(0x0d);
  if (stray >= 0) {
    const line = lf.subarray(0, stray).toString("latin1").split("\n").length;
    throw new Error(`${name} has a carriage return that does not end a line (line ${line}); remove it`);
  }
  return { content: lf, normalised: lf.length !== content.length };
}

/**
 * Writes the bundle folder from the built agent and the scripts folder; SHA256SUMS is computed over
 * exactly the bytes written there (what ships). Returns the files whose CRLF endings were normalised
 * and the SHA-256 of SHA256SUMS.
 */
function writeBundle({ agentFile: agent, scriptsDir, bundleDir }) {
  rmSync(bundleDir, { recursive: true, force: true });
  mkdirSync(bundleDir, { recursive: true });
  const normalised = [];
  const contents = new Map([["plutus-sync.cjs", readFileSync(agent)]]);
  for (const script of scripts) {
    const result = shellScriptForBundle(script, readFileSync(join(scriptsDir, script)));
    if (result.normalised) normalised.push(script);
    contents.set(script, result.content);
  }
  let sums = "";
  for (const [file, content] of contents) {
    writeFileSync(join(bundleDir, file), content);
    chmodSync(join(bundleDir, file), 0o755);
    sums += `${createHash("sha256").update(readFileSync(join(bundleDir, file))).digest("hex")}  ${file}\n`;
  }
  writeFileSync(join(bundleDir, "SHA256SUMS"), sums);
  return { normalised, sha256: createHash("sha256").update(sums).digest("hex") };
}

async function main() {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });
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
  const bundleDir = join(dist, "bundle");
  const { normalised, sha256 } = writeBundle({ agentFile, scriptsDir: join(__dirname, "scripts"), bundleDir });
  for (const script of normalised) {
    process.stderr.write(`note: scripts/${script} has Windows (CRLF) line endings; the bundle gets LF (see .gitattributes)\n`);
  }
  process.stdout.write(`built ${agentFile}\nbundle ${bundleDir} sha256 ${sha256}\n`);
}

module.exports = { writeBundle, shellScriptForBundle };

if (require.main === module) {
  main().catch((error) => {
    process.stderr.write(`build failed: ${error.message}\n`);
    process.exit(1);
  });
}
