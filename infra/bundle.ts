import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** The files `npm run build` puts in agent/dist/bundle/. */
export const BUNDLE_FILES = ["plutus-sync.cjs", "sync_plutus.sh", "install.sh"] as const;

export interface AgentBundle {
  readonly dir: string;
  /** sha256 (hex) of the SHA256SUMS file: changes whenever any bundled file changes. */
  readonly checksum: string;
  readonly files: readonly { readonly name: string; readonly content: Buffer; readonly mode: number }[];
  /** The files as the ustar archive that ships to the VM. */
  readonly archive: Buffer;
  /** sha256 (hex) of `archive`: the VM refuses any other bytes. */
  readonly archiveSha256: string;
}

export class BundleError extends Error {
  override name = "BundleError";
}

/** Reads and verifies the agent bundle; a missing or inconsistent bundle says to run the build. */
export function readBundle(dir: string): AgentBundle {
  const sumsPath = path.join(dir, "SHA256SUMS");
  const missing = [...BUNDLE_FILES, "SHA256SUMS"].filter((f) => !fs.existsSync(path.join(dir, f)));
  if (missing.length > 0) {
    throw new BundleError(`agent bundle not found at ${dir} (missing ${missing.join(", ")}): run npm run build first`);
  }
  const sums = fs.readFileSync(sumsPath);
  const listed = new Map<string, string>();
  for (const line of sums.toString("utf8").split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line.trim());
    if (m) listed.set(m[2], m[1]);
  }
  const files = BUNDLE_FILES.map((name) => {
    const content = fs.readFileSync(path.join(dir, name));
    const actual = crypto.createHash("sha256").update(content).digest("hex");
    if (listed.get(name) !== actual) {
      throw new BundleError(`agent bundle at ${dir} is inconsistent: ${name} does not match SHA256SUMS; run npm run build again`);
    }
    // A Windows checkout (core.autocrlf) gives CRLF; bash then fails on `set -euo pipefail\r`.
    if (name.endsWith(".sh") && content.includes(0x0d)) {
      throw new BundleError(`agent bundle at ${dir} is unusable: ${name} has carriage returns (Windows line endings); run npm run build again (it writes LF)`);
    }
    return { name, content, mode: name.endsWith(".sh") ? 0o755 : 0o644 };
  });
  const all = [...files, { name: "SHA256SUMS", content: sums, mode: 0o644 }];
  const archive = tarFiles(all);
  return {
    dir,
    checksum: crypto.createHash("sha256").update(sums).digest("hex"),
    files: all,
    archive,
    archiveSha256: crypto.createHash("sha256").update(archive).digest("hex"),
  };
}

/** A POSIX ustar archive of flat files (what `tar -x` on the VM unpacks). */
export function tarFiles(files: readonly { name: string; content: Buffer; mode: number }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const f of files) {
    if (Buffer.byteLength(f.name) > 99 || f.name.includes("/")) throw new Error(`bundle file name not supported in tar: ${f.name}`);
    const header = Buffer.alloc(512, 0);
    const put = (text: string, offset: number, length: number) => header.write(text, offset, length, "ascii");
    const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, "0") + "\0";
    put(f.name, 0, 100);
    put(octal(f.mode, 8), 100, 8);
    put(octal(0, 8), 108, 8);
    put(octal(0, 8), 116, 8);
    put(octal(f.content.length, 12), 124, 12);
    put(octal(0, 12), 136, 12);
    put("        ", 148, 8);
    put("0", 156, 1);
    put("ustar\0", 257, 6);
    put("00", 263, 2);
    let sum = 0;
    for (const b of header) sum += b;
    put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
    blocks.push(header, f.content, Buffer.alloc((512 - (f.content.length % 512)) % 512, 0));
  }
  blocks.push(Buffer.alloc(1024, 0));
  return Buffer.concat(blocks);
}
