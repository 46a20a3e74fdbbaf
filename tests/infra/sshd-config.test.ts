/*
 * The sshd_config the program renders for the ERP (infra/erpOpenSsh.ts) passes Debian's `sshd -t`,
 * the same grammar as Win32-OpenSSH, once its Windows-only tokens are mapped to local paths by the
 * simulated guest's sshd.exe (tests/powershell/SimHost/bin/sshd.exe): __PROGRAMDATA__ and C:\ to a
 * folder, sftp-server.exe to Debian's sftp-server.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO } from "./harness";
import { renderSshdConfig } from "../../infra/erpOpenSsh";

const sshdExe = path.join(REPO, "tests", "powershell", "SimHost", "bin", "sshd.exe");
const c = fs.mkdtempSync(path.join(os.tmpdir(), "plutus-sshd-"));
afterAll(() => fs.rmSync(c, { recursive: true, force: true }));

function sshdTest(config: string) {
  const ssh = path.join(c, "ProgramData", "ssh");
  fs.mkdirSync(ssh, { recursive: true });
  if (!fs.existsSync(path.join(ssh, "ssh_host_ed25519_key"))) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(ssh, "ssh_host_ed25519_key")]);
  fs.writeFileSync(path.join(ssh, "sshd_config"), config);
  return spawnSync(sshdExe, ["-t", "-f", "C:\\ProgramData\\ssh\\sshd_config"], { encoding: "utf8", env: { ...process.env, PLUTUS_SIM_GUEST_C: c } });
}

test("the rendered ERP sshd_config passes Debian's sshd -t", () => {
  const config = renderSshdConfig({ syncUser: "plutus-sync", authorizedKeysFileName: "plutus-sync_authorized_keys", chrootDirectory: "C:\\Plutus" });
  expect(config).toContain("\r\n");
  const run = sshdTest(config);
  expect([run.status, run.stderr]).toEqual([0, ""]);
});

test("sshd -t through the same mapping rejects a broken config, naming the line", () => {
  const config = renderSshdConfig({ syncUser: "plutus-sync", authorizedKeysFileName: "plutus-sync_authorized_keys", chrootDirectory: "C:\\Plutus" }).replace("PermitTTY no", "PermitTTY perhaps");
  const run = sshdTest(config);
  expect(run.status).toBe(255);
  expect(run.stderr).toMatch(/sshd_config line 24: unsupported option "perhaps"\./);
});
