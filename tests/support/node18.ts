import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Debian bookworm's Node.js 18 (`nodejs` + `libnode108`, the builtins Debian keeps outside it:
 * `node-acorn`, `node-cjs-module-lexer`, `node-undici`, plus any shared library this machine
 * lacks), fetched with `apt-get download` and unpacked with `dpkg -x` into a cache beside the
 * machine's own Node. Nothing is installed into the system's package database.
 *
 * Debian's libnode loads those builtins from the absolute path /usr/share/nodejs/…, compiled in.
 * The cached copy of libnode has that prefix replaced by one of the same length, SHARE_LINK, a
 * symbolic link to the unpacked /usr/share/nodejs; so nothing is written under /usr.
 */
export const NODE18_CACHE = "/var/cache/plutus-test/node18";
const DEBIAN_SHARE = "/usr/share/nodejs/";
const SHARE_LINK = "/var/cache/plnd18/";
const BUILTIN_PACKAGES = ["node-acorn", "node-cjs-module-lexer", "node-undici"];

/** Shared libraries libnode108 links against, and the bookworm package that ships each. */
const LIBRARY_PACKAGES: Record<string, string> = {
  "libuv.so.1": "libuv1",
  "libcares.so.2": "libc-ares2",
  "libnghttp2.so.14": "libnghttp2-14",
  "libbrotlidec.so.1": "libbrotli1",
  "libbrotlienc.so.1": "libbrotli1",
  "libicui18n.so.72": "libicu72",
  "libicuuc.so.72": "libicu72",
  "libicudata.so.72": "libicu72",
  "libssl.so.3": "libssl3",
  "libcrypto.so.3": "libssl3",
  "libz.so.1": "zlib1g",
};

/**
 * Returns the path of an executable that runs Node 18 (a wrapper setting LD_LIBRARY_PATH), usable
 * by any account (the cache is world-readable). Downloads on first use; later calls reuse it.
 */
export function ensureNode18(): string {
  const wrapper = join(NODE18_CACHE, "node");
  if (existsSync(wrapper)) {
    linkShare();
    return wrapper;
  }
  mkdirSync("/var/cache/plutus-test", { recursive: true, mode: 0o755 });
  // Built beside the cache and renamed into place, so a concurrent or interrupted run never leaves half a cache.
  const build = mkdtempSync(`${NODE18_CACHE}.build-`);
  try {
    chmodSync(build, 0o755);
    const debs = join(build, "debs");
    const root = join(build, "root");
    mkdirSync(debs);
    mkdirSync(root, { mode: 0o755 });
    const version = node18Version();
    download(debs, [`nodejs=${version}`, `libnode108=${version}`, ...BUILTIN_PACKAGES]);
    unpackAll(debs, root);
    const binary = join(root, "usr/bin/node");
    const libDir = join(root, "usr/lib/x86_64-linux-gnu");
    const missing = missingLibraries(binary, libDir);
    const extra = [...new Set(missing.map((lib) => LIBRARY_PACKAGES[lib] ?? fail(`libnode108 needs ${lib}, which no known package provides`)))];
    if (extra.length > 0) {
      download(debs, extra);
      unpackAll(debs, root);
      const still = missingLibraries(binary, libDir);
      if (still.length > 0) fail(`still missing after unpacking ${extra.join(", ")}: ${still.join(", ")}`);
    }
    // After the last unpacking, which would restore the original.
    relocateBuiltins(join(libDir, "libnode.so.108"));
    const finalRoot = join(NODE18_CACHE, "root");
    writeFileSync(
      join(build, "node"),
      `#!/bin/sh\nLD_LIBRARY_PATH=${finalRoot}/usr/lib/x86_64-linux-gnu\nexport LD_LIBRARY_PATH\nexec ${finalRoot}/usr/bin/node "$@"\n`,
      { mode: 0o755 },
    );
    rmSync(debs, { recursive: true, force: true });
    try {
      renameSync(build, NODE18_CACHE);
    } catch (error) {
      if (!existsSync(wrapper)) throw error; // another run finished first: use its cache
    }
    linkShare();
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
  const printed = execFileSync(wrapper, ["--version"]).toString().trim();
  if (!printed.startsWith("v18.")) fail(`${wrapper} printed ${printed}, not v18.x`);
  return wrapper;
}

function relocateBuiltins(libnode: string): void {
  const from = Buffer.from(DEBIAN_SHARE);
  const to = Buffer.from(SHARE_LINK);
  if (from.length !== to.length) fail("internal: the relocated builtin prefix must keep its length");
  const bytes = readFileSync(libnode);
  let count = 0;
  for (let at = bytes.indexOf(from); at !== -1; at = bytes.indexOf(from, at + to.length)) {
    to.copy(bytes, at);
    count++;
  }
  if (count === 0) fail(`${libnode} does not mention ${DEBIAN_SHARE}; the relocation no longer applies`);
  writeFileSync(libnode, bytes);
}

/** SHARE_LINK -> the cache's usr/share/nodejs, made (atomically) when missing or wrong. */
function linkShare(): void {
  const link = SHARE_LINK.replace(/\/$/, "");
  const target = join(NODE18_CACHE, "root/usr/share/nodejs");
  try {
    if (readlinkSync(link) === target) return;
  } catch {
    // absent: made below
  }
  const temp = `${link}.${process.pid}`;
  rmSync(temp, { force: true });
  symlinkSync(target, temp);
  renameSync(temp, link);
}

function fail(message: string): never {
  throw new Error(`Node 18 for tests: ${message}`);
}

/** The newest 18.x version of `nodejs` the configured apt sources offer. */
function node18Version(): string {
  const lookup = () =>
    execFileSync("apt-cache", ["madison", "nodejs"])
      .toString()
      .split("\n")
      .map((line) => line.split("|")[1]?.trim())
      .filter((v): v is string => !!v && v.startsWith("18."));
  let versions = lookup();
  if (versions.length === 0) {
    execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore" });
    versions = lookup();
  }
  if (versions.length === 0) fail("apt offers no nodejs 18.x (Debian bookworm's); is deb.debian.org bookworm in the apt sources?");
  return versions[0];
}

function download(into: string, packages: string[]): void {
  const run = () => execFileSync("apt-get", ["download", "-q", ...packages], { cwd: into, stdio: ["ignore", "ignore", "pipe"] });
  try {
    run();
  } catch {
    execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore" });
    try {
      run();
    } catch (error) {
      fail(`apt-get download ${packages.join(" ")} failed: ${(error as { stderr?: Buffer }).stderr?.toString() ?? error}`);
    }
  }
}

function unpackAll(debs: string, root: string): void {
  for (const deb of readdirSync(debs).filter((f) => f.endsWith(".deb"))) execFileSync("dpkg", ["-x", join(debs, deb), root]);
}

function missingLibraries(binary: string, libDir: string): string[] {
  const out = execFileSync("ldd", [binary], { env: { PATH: process.env.PATH, LD_LIBRARY_PATH: libDir } }).toString();
  return [...out.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]);
}
