import * as crypto from "node:crypto";

/** OpenSSH's `SHA256:` fingerprint (unpadded base64 of the SHA-256 of the key blob) of a public key line. */
export function sshFingerprintSha256(publicKeyLine: string): string {
  const parts = publicKeyLine.trim().split(/\s+/);
  if (parts.length < 2 || !/^[A-Za-z0-9+/]+={0,3}$/.test(parts[1])) {
    throw new Error(`not an OpenSSH public key line: ${JSON.stringify(publicKeyLine.slice(0, 40))}`);
  }
  const blob = Buffer.from(parts[1], "base64");
  return `SHA256:${crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}
