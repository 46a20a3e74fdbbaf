// `npm run lab` entry: bundles lab.ts with esbuild (a dev dependency) and runs it.
const { buildSync } = require("esbuild");
const { join } = require("node:path");

const outfile = join(__dirname, "dist", "lab.cjs");
buildSync({
  entryPoints: [join(__dirname, "lab.ts")],
  outfile,
  bundle: true,
  platform: "node",
  target: "node18",
  format: "cjs",
  external: ["cpu-features", "*.node"],
  logLevel: "warning",
});
require(outfile);
