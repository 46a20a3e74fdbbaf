/**
 * Deploys the release bundle to a real Linux host (tests/support/linuxHost.ts: this machine behind
 * an sshd in a network namespace, root login by key, host key pinned) with the commands the stack
 * runs, then checks the installation, the cron job as cron runs it, idempotence, uninstall and
 * Node 18. Runs as root; it creates and removes the `plutus` account, /opt/plutus-sync, /etc/plutus
 * and /etc/cron.d/plutus-sync, so it refuses to run where a real installation exists.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { AgentConfigInput } from "@plutus/shared";
import { startErpServer, ErpServer, ERP_USER } from "../support/sshd";
import { startLinuxHost, LinuxHost, CommandResult } from "../support/linuxHost";
import { ensureNode18 } from "../support/node18";
import { sampleOrder } from "../support/agent";

jest.setTimeout(120_000);

const BUILT_BUNDLE = resolve(__dirname, "../../agent/dist/bundle");
const BASE = "/var/lib/plutus-deploytest";
const FOLDERS = {
  outbox: `${BASE}/outbox`,
  archive: `${BASE}/archive`,
  quarantine: `${BASE}/quarantine`,
  stateDir: `${BASE}/state`,
  logDir: "/var/log/plutus-deploytest",
};
const INSTALLED = ["/opt/plutus-sync", "/etc/plutus", "/etc/cron.d/plutus-sync"];

/**
 * What the stack runs on the VM. PROVISIONAL: written from issue 4 until infra/agentDeployment.ts
 * exports renderWaitCommand/renderInstallCommand/renderInstallStdin; then these come from there.
 */
const REMOTE_BUNDLE_DIR = "/root/plutus-sync-bundle";
const stackCommands = {
  wait: () => "cloud-init status --wait",
  install: () => `bash ${REMOTE_BUNDLE_DIR}/install.sh --stdin --outbox-group www-data`,
  installStdin: (agentConfig: AgentConfigInput, privateKey: string) => JSON.stringify({ agentConfig, privateKey }),
  uninstall: () => "/opt/plutus-sync/install.sh --uninstall",
};

/** The cron file install.sh must write, byte for byte. */
const EXPECTED_CRON_FILE = `# /etc/cron.d/plutus-sync - installed by /opt/plutus-sync/install.sh; re-run it rather than editing.
# One plutus-sync delivery pass every 5 minutes as the plutus account. The agent logs to its log
# folder (logDir in /etc/plutus/agent.json); anything it prints on stderr goes to syslog with the
# tag plutus-sync (journalctl -t plutus-sync).
SHELL=/bin/sh
PATH=/usr/bin:/bin
HOME=/
*/5 * * * * plutus /opt/plutus-sync/sync_plutus.sh 2>&1 >/dev/null | logger -t plutus-sync -p user.warning
`;

let host: LinuxHost;
let erp: ErpServer;
let bundle: string;
let scratch: string;
let agentConfig: AgentConfigInput;
let privateKey: string;
let node18: string;
let firstUid: number;

function sh(file: string, argv: string[], input?: string): CommandResult {
  const r = spawnSync(file, argv, { input: input ?? "", encoding: "utf8" });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function accountExists(name: string): boolean {
  return sh("getent", ["passwd", name]).code === 0;
}

/** A real installation (not one this test left behind) must never be touched. */
function refuseToClobberARealInstallation(): void {
  const present = INSTALLED.filter((p) => existsSync(p)).concat(accountExists("plutus") ? ["account plutus"] : []);
  if (present.length === 0) return;
  let ours = false;
  try {
    ours = (JSON.parse(readFileSync("/etc/plutus/agent.json", "utf8")) as { outbox?: string }).outbox === FOLDERS.outbox;
  } catch {
    ours = !existsSync("/etc/plutus/agent.json") && !existsSync("/opt/plutus-sync/plutus-sync.cjs");
  }
  if (!ours) throw new Error(`plutus-sync seems installed on this machine (${present.join(", ")}); the deploy test would remove it. Uninstall it first.`);
  removeEverything();
}

function removeEverything(): void {
  if (existsSync(join(bundle ?? BUILT_BUNDLE, "install.sh"))) sh("bash", [join(bundle ?? BUILT_BUNDLE, "install.sh"), "--uninstall"]);
  for (const name of ["plutus", "plutus-uidshift"]) if (accountExists(name)) sh("userdel", [name]);
  if (sh("getent", ["group", "plutus"]).code === 0) sh("groupdel", ["plutus"]);
  for (const path of [...INSTALLED, BASE, FOLDERS.logDir]) rmSync(path, { recursive: true, force: true });
}

/** The installer-managed entries: type, mode, owner, size, sha256, mtime and ctime (ns). */
function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  const paths = ["/opt/plutus-sync", ...readdirSync("/opt/plutus-sync").map((f) => `/opt/plutus-sync/${f}`), "/etc/plutus",
    "/etc/plutus/agent.json", "/etc/plutus/id_ed25519", "/etc/cron.d/plutus-sync", BASE, ...Object.values(FOLDERS)];
  for (const path of paths) {
    const st = lstatSync(path, { bigint: true });
    out[path] = [st.mode.toString(8), `${st.uid}:${st.gid}`, st.size, st.mtimeNs, st.ctimeNs, st.isFile() ? sha256(path) : "-"].join(" ");
  }
  out.acl = sh("getfacl", ["--absolute-names", FOLDERS.outbox]).stdout;
  out.passwd = sh("getent", ["passwd", "plutus"]).stdout;
  out.group = sh("getent", ["group", "plutus"]).stdout;
  return out;
}

function tree(): string {
  return execFileSync("find", ["/opt/plutus-sync", "/etc/plutus", "/etc/cron.d/plutus-sync", BASE, FOLDERS.logDir, "-printf", "%M %u:%g %p\n"])
    .toString()
    .split("\n")
    .filter(Boolean)
    .sort((a, b) => a.split(" ")[2].localeCompare(b.split(" ")[2]))
    .join("\n");
}

async function deploy(): Promise<{ wait: CommandResult; install: CommandResult }> {
  const wait = await host.ssh(stackCommands.wait());
  await host.copyDir(bundle, REMOTE_BUNDLE_DIR);
  const install = await host.ssh(stackCommands.install(), { input: stackCommands.installStdin(agentConfig, privateKey) });
  return { wait, install };
}

/** Writes an order as the web application does: as www-data, strict umask, temp name then rename. */
async function webAppWrites(name: string, content: string): Promise<void> {
  const backdated = Math.floor(Date.now() / 1000) - 60;
  const r = await host.exec(
    ["setpriv", "--reuid=www-data", "--regid=www-data", "--init-groups", "/bin/sh", "-c",
      'umask 077 && cat >"$0/.$1.tmp" && touch -d "@$2" "$0/.$1.tmp" && mv "$0/.$1.tmp" "$0/$1"', FOLDERS.outbox, name, String(backdated)],
    { input: content },
  );
  expect(r).toMatchObject({ code: 0, stderr: "" });
}

interface CronJob {
  env: Record<string, string>;
  schedule: string;
  user: string;
  command: string;
}

function parseCronFile(text: string): CronJob {
  const env: Record<string, string> = {};
  const jobs: Array<Omit<CronJob, "env">> = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const assignment = /^([A-Z_]+)=(.*)$/.exec(line);
    if (assignment) {
      env[assignment[1]] = assignment[2];
      continue;
    }
    const fields = /^(\S+ \S+ \S+ \S+ \S+) (\S+) (.+)$/.exec(line);
    if (!fields) throw new Error(`not a cron.d line: ${line}`);
    jobs.push({ schedule: fields[1], user: fields[2], command: fields[3] });
  }
  expect(jobs).toHaveLength(1);
  return { env, ...jobs[0] };
}

/** Runs a command as cron does: the user's uid/gid/groups, the cron file's variables and nothing else, cwd HOME, SHELL -c. */
function asCron(job: CronJob, command: string, extraEnv: Record<string, string> = {}): Promise<CommandResult> {
  const env: Record<string, string> = { ...job.env, LOGNAME: job.user, ...extraEnv };
  return host.exec([
    "env", "-i", "-C", env.HOME, ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    "setpriv", `--reuid=${job.user}`, `--regid=${job.user}`, "--init-groups", env.SHELL, "-c", command,
  ]);
}

function todayLocal(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function logEvents(): Array<Record<string, unknown>> {
  const file = join(FOLDERS.logDir, `plutus-sync-${todayLocal()}.log`);
  return readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the deploy tests must run as root");
  for (const f of ["plutus-sync.cjs", "sync_plutus.sh", "install.sh", "SHA256SUMS"]) {
    if (!existsSync(join(BUILT_BUNDLE, f))) throw new Error(`${BUILT_BUNDLE}/${f} is missing: run 'npm run build' first`);
  }
  refuseToClobberARealInstallation();
  // A private copy: another session may rebuild agent/dist while this suite runs.
  scratch = mkdtempSync(join(tmpdir(), "plutus-deploy-"));
  bundle = join(scratch, "bundle");
  cpSync(BUILT_BUNDLE, bundle, { recursive: true });
  node18 = ensureNode18();
  host = await startLinuxHost({ fakeCloudInit: true });
  erp = await startErpServer({ extraConfig: [`ListenAddress ${host.gatewayAddress}`] });
  privateKey = readFileSync(erp.clientKeyPath, "utf8");
  agentConfig = {
    ...FOLDERS,
    minAgeSeconds: 1,
    remote: {
      host: host.gatewayAddress,
      port: erp.port,
      username: ERP_USER,
      privateKeyPath: "/etc/plutus/id_ed25519",
      hostKeySha256: erp.hostKeySha256,
      inbox: "/Inbox",
      staging: "/Staging",
    },
  };
});

afterAll(async () => {
  try {
    removeEverything();
  } finally {
    await host?.destroy();
    await erp?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
});

describe("install.sh on a real Linux host, through the stack's commands", () => {
  test("wait, copy and install leave account, folders, files and cron job exactly as specified", async () => {
    const { wait, install } = await deploy();
    expect(wait).toMatchObject({ code: 0, stdout: "status: done\n" });
    expect(install.stderr).toBe("");
    expect(install.code).toBe(0);
    expect(install.stdout).toContain("install.sh: created system account plutus (no login shell, no home)\n");
    expect(install.stdout).toContain(`install.sh: created ${FOLDERS.outbox} (plutus:www-data 2770)\n`);
    expect(install.stdout).toContain(`install.sh: set ACL of ${FOLDERS.outbox}: new files readable and movable by plutus whatever the web application's umask\n`);
    expect(install.stdout).toContain("install.sh: created /etc/cron.d/plutus-sync (root:root 0644)\n");
    expect(install.stdout).toMatch(/install.sh: installed: 17 change\(s\)\n/);
    expect(install.stdout).toContain("install.sh:   OK\n");
    expect(install.stdout).toMatch(/install.sh: check passed; cron runs \/opt\/plutus-sync\/sync_plutus.sh every 5 minutes as plutus\n$/);
    // No key material in what the stack would log.
    expect(install.stdout + install.stderr).not.toContain(privateKey.split("\n")[1]);

    const installedTree = tree();
    if (process.env.PLUTUS_SHOW_TREE) process.stdout.write(`${installedTree}\n${execFileSync("getfacl", ["--absolute-names", FOLDERS.outbox])}`);
    expect(installedTree).toBe(
      [
        "drwxr-x--- root:plutus /etc/plutus",
        "-rw-r----- root:plutus /etc/plutus/agent.json",
        "-rw------- plutus:plutus /etc/plutus/id_ed25519",
        "-rw-r--r-- root:root /etc/cron.d/plutus-sync",
        "drwxr-xr-x root:root /opt/plutus-sync",
        "-rwxr-xr-x root:root /opt/plutus-sync/install.sh",
        "-rwxr-xr-x root:root /opt/plutus-sync/plutus-sync.cjs",
        "-rw-r--r-- root:root /opt/plutus-sync/SHA256SUMS",
        "-rwxr-xr-x root:root /opt/plutus-sync/sync_plutus.sh",
        "drwxr-xr-x root:root /var/lib/plutus-deploytest",
        "drwxr-x--- plutus:plutus /var/lib/plutus-deploytest/archive",
        "drwxrws--- plutus:www-data /var/lib/plutus-deploytest/outbox",
        "drwxr-x--- plutus:plutus /var/lib/plutus-deploytest/quarantine",
        "drwx------ plutus:plutus /var/lib/plutus-deploytest/state",
        "drwxr-x--- plutus:plutus /var/log/plutus-deploytest",
      ].sort((a, b) => a.split(" ")[2].localeCompare(b.split(" ")[2])).join("\n"),
    );
    expect(sh("getfacl", ["--omit-header", "--absolute-names", FOLDERS.outbox]).stdout).toBe(
      "user::rwx\ngroup::rwx\nother::---\ndefault:user::rwx\ndefault:user:plutus:rwx\ndefault:group::rwx\ndefault:mask::rwx\ndefault:other::---\n\n",
    );
    for (const f of ["plutus-sync.cjs", "sync_plutus.sh", "install.sh", "SHA256SUMS"]) {
      expect(sha256(`/opt/plutus-sync/${f}`)).toBe(sha256(join(bundle, f)));
    }
    expect(readFileSync("/etc/plutus/agent.json", "utf8")).toBe(JSON.stringify(agentConfig, null, 2) + "\n");
    expect(readFileSync("/etc/plutus/id_ed25519", "utf8")).toBe(privateKey);
    expect(readFileSync("/etc/cron.d/plutus-sync", "utf8")).toBe(EXPECTED_CRON_FILE);

    const passwd = sh("getent", ["passwd", "plutus"]).stdout.trim().split(":");
    firstUid = Number(passwd[2]);
    expect(firstUid).toBeLessThan(1000);
    expect(passwd.slice(4)).toEqual(["plutus-sync order delivery", "/nonexistent", "/usr/sbin/nologin"]);
    expect(sh("getent", ["group", "plutus"]).stdout).toBe(`plutus:x:${passwd[3]}:\n`);
    expect(sh("id", ["-nG", "plutus"]).stdout).toBe("plutus\n");
    expect(sh("getent", ["shadow", "plutus"]).stdout.split(":")[1]).toBe("!");
    expect(existsSync("/nonexistent")).toBe(false);
  });

  test("cron's own parser accepts the job (crontab -n on the job line without the user field)", () => {
    const job = parseCronFile(readFileSync("/etc/cron.d/plutus-sync", "utf8"));
    expect(job).toEqual({
      env: { SHELL: "/bin/sh", PATH: "/usr/bin:/bin", HOME: "/" },
      schedule: "*/5 * * * *",
      user: "plutus",
      command: "/opt/plutus-sync/sync_plutus.sh 2>&1 >/dev/null | logger -t plutus-sync -p user.warning",
    });
    const userCrontab = join(scratch, "crontab");
    writeFileSync(userCrontab, `SHELL=${job.env.SHELL}\nPATH=${job.env.PATH}\nHOME=${job.env.HOME}\n${job.schedule} ${job.command}\n`);
    const dryRun = sh("crontab", ["-n", userCrontab]);
    expect(dryRun.code).toBe(0);
    const broken = join(scratch, "crontab-broken");
    writeFileSync(broken, `*/5 * * * plutus ${job.command}\n`);
    expect(sh("crontab", ["-n", broken]).code).not.toBe(0);
  });

  test("the cron line, run as plutus with cron's environment, delivers the web app's orders and logs them", async () => {
    const job = parseCronFile(readFileSync("/etc/cron.d/plutus-sync", "utf8"));
    const orders = { "order-1001.json": sampleOrder(1001), "order-1002.json": sampleOrder(1002) };
    for (const [name, content] of Object.entries(orders)) await webAppWrites(name, content);
    // umask 077 in the web app, yet the default ACL lets the agent read it.
    expect(statSync(join(FOLDERS.outbox, "order-1001.json")).mode & 0o777).toBe(0o660);
    expect(statSync(join(FOLDERS.outbox, "order-1001.json")).gid).toBe(Number(sh("getent", ["group", "www-data"]).stdout.split(":")[2]));

    const result = await asCron(job, job.command);
    expect(result).toMatchObject({ code: 0, stdout: "", stderr: "" });
    for (const [name, content] of Object.entries(orders)) {
      expect(readFileSync(join(erp.inboxDir, name), "utf8")).toBe(content);
      expect(readFileSync(join(FOLDERS.archive, todayLocal(), name), "utf8")).toBe(content);
    }
    expect(readdirSync(FOLDERS.outbox)).toEqual([]);
    expect(readdirSync(erp.stagingDir)).toEqual([]);

    const logFile = join(FOLDERS.logDir, `plutus-sync-${todayLocal()}.log`);
    const st = statSync(logFile);
    expect([st.uid, st.mode & 0o777]).toEqual([Number(sh("id", ["-u", "plutus"]).stdout), 0o600]);
    const events = logEvents();
    expect(events.filter((e) => e.event === "delivered").map((e) => e.file).sort()).toEqual(Object.keys(orders));
    expect(events.filter((e) => e.event === "pass").pop()).toMatchObject({ exitCode: 0, found: 2, delivered: 2, failed: 0 });
  });

  test("sync_plutus.sh exits with the agent's code and says what is missing", async () => {
    const job = parseCronFile(readFileSync("/etc/cron.d/plutus-sync", "utf8"));
    const missingConfig = await asCron(job, "/opt/plutus-sync/sync_plutus.sh", { PLUTUS_CONFIG: "/etc/plutus/absent.json" });
    expect(missingConfig.code).toBe(2);
    expect(missingConfig.stderr).toContain("cannot read configuration /etc/plutus/absent.json");
    const noNode = await asCron(job, "/opt/plutus-sync/sync_plutus.sh", { PLUTUS_NODE: "/nonexistent/node" });
    expect(noNode).toMatchObject({
      code: 2,
      stdout: "",
      stderr:
        "sync_plutus.sh: Node.js not found (looked for /usr/bin/node and node on /usr/local/bin:/usr/bin:/bin); install Node.js 18 or later, e.g. 'apt-get install nodejs', or re-run /opt/plutus-sync/install.sh\n",
    });
    const noAgent = await asCron(job, "/opt/plutus-sync/sync_plutus.sh", { PLUTUS_HOME: "/nonexistent" });
    expect(noAgent).toMatchObject({
      code: 2,
      stderr: "sync_plutus.sh: /nonexistent/plutus-sync.cjs not found or not readable; re-run install.sh from the release bundle (or set PLUTUS_HOME)\n",
    });
  });

  test("the installed bundle runs under Debian bookworm's Node 18 as plutus, through sync_plutus.sh", async () => {
    expect(execFileSync(node18, ["--version"]).toString()).toMatch(/^v18\./);
    const job = parseCronFile(readFileSync("/etc/cron.d/plutus-sync", "utf8"));
    await webAppWrites("order-1800.json", sampleOrder(1800));
    const result = await asCron(job, "/opt/plutus-sync/sync_plutus.sh --json", { PLUTUS_NODE: node18 });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split("\n").pop() as string) as Record<string, number>;
    expect(summary).toMatchObject({ found: 1, delivered: 1, failed: 0, quarantined: 0, deferred: 0 });
    expect(readFileSync(join(erp.inboxDir, "order-1800.json"), "utf8")).toBe(sampleOrder(1800));
    const versionCheck = await asCron(job, `${node18} -p process.version`);
    expect(versionCheck.stdout).toMatch(/^v18\./);
  });

  test("installing again changes nothing and says so", async () => {
    const before = snapshot();
    const { install } = await deploy();
    expect(install).toMatchObject({ code: 0, stderr: "" });
    expect(install.stdout).toContain("install.sh: no changes: plutus-sync is already installed exactly as specified\n");
    expect(install.stdout).not.toMatch(/^install\.sh: (created|updated|set|removed|gave|installed)/m);
    expect(snapshot()).toEqual(before);
  });

  test("a changed configuration is the only thing rewritten", async () => {
    const before = snapshot();
    agentConfig = { ...agentConfig, minAgeSeconds: 2 };
    const { install } = await deploy();
    expect(install).toMatchObject({ code: 0, stderr: "" });
    expect(install.stdout.split("\n").filter((l) => /^install\.sh: (created|updated|set|removed|gave|installed)/.test(l))).toEqual([
      "install.sh: updated /etc/plutus/agent.json (root:plutus 0640)",
      "install.sh: installed: 1 change(s)",
    ]);
    const after = snapshot();
    const changed = Object.keys(after).filter((k) => after[k] !== before[k]);
    expect(changed.sort()).toEqual(["/etc/plutus", "/etc/plutus/agent.json"]);
    expect(JSON.parse(readFileSync("/etc/plutus/agent.json", "utf8"))).toEqual(agentConfig);
  });
});
