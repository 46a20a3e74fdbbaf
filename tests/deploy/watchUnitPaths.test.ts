/**
 * install.sh's choice of the watch unit's ReadWritePaths= (UNIT_PATHS_TOOL, run here as install.sh
 * runs it, on real folders): folders that orders move between share one entry when they share a
 * file system and a folder of their own, so a move stays a rename inside the service's sandbox.
 * Runs as root (it mounts a tmpfs as a second file system).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const INSTALL_SH = resolve(__dirname, "../../agent/scripts/install.sh");

/** The tool's text exactly as install.sh holds it (a single-quoted bash string). */
function unitPathsTool(): string {
  const text = readFileSync(INSTALL_SH, "utf8");
  const found = /^readonly UNIT_PATHS_TOOL='\n([^']*)'$/m.exec(text);
  if (!found) throw new Error("UNIT_PATHS_TOOL not found in install.sh");
  return found[1];
}

let root: string;
let mounted: string | undefined;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "plutus-unitpaths-"));
});
afterEach(() => {
  if (mounted) execFileSync("umount", [mounted]);
  mounted = undefined;
  rmSync(root, { recursive: true, force: true });
});

/** Runs the tool on these folders (created), with these system folders; returns its entries and stdout. */
function unitPaths(folders: { outbox: string; archive: string; quarantine: string; stateDir: string; logDir: string }, system: string[] = []) {
  const work = join(root, "work");
  mkdirSync(work, { recursive: true });
  const list = [folders.outbox, folders.archive, folders.quarantine, folders.stateDir, folders.logDir];
  for (const folder of list) mkdirSync(folder, { recursive: true });
  writeFileSync(join(work, "folders"), list.map((f) => f + "\0").join(""));
  writeFileSync(join(work, "system-folders"), system.map((f) => f + "\0").join(""));
  const run = spawnSync(process.execPath, ["-e", unitPathsTool(), work], { encoding: "utf8" });
  return { code: run.status, stderr: run.stderr, apart: run.stdout, paths: readFileSync(join(work, "unit-paths"), "utf8").split("\0").slice(0, -1) };
}

describe("the watch unit's ReadWritePaths=", () => {
  it("one entry for the agent's own folder holding outbox, archive, quarantine and state; the log folder apart", () => {
    const base = join(root, "lib", "plutus");
    expect(unitPaths({ outbox: `${base}/outbox`, archive: `${base}/archive`, quarantine: `${base}/quarantine`, stateDir: `${base}/state`, logDir: join(root, "log", "plutus") })).toEqual({
      code: 0,
      stderr: "",
      apart: "",
      paths: [base, join(root, "log", "plutus")],
    });
  });

  it("the deepest common folder, also when the folders are nested at different depths; state elsewhere is its own entry", () => {
    const base = join(root, "srv", "plutus");
    expect(unitPaths({ outbox: `${base}/in/outbox`, archive: `${base}/kept/archive`, quarantine: `${base}/kept/quarantine`, stateDir: join(root, "state"), logDir: `${base}/logs` }).paths).toEqual([base, join(root, "state")]);
    expect(unitPaths({ outbox: `${base}/kept/outbox`, archive: `${base}/kept/archive`, quarantine: `${base}/kept/quarantine`, stateDir: join(root, "state"), logDir: `${base}/logs` }).paths).toEqual([`${base}/kept`, join(root, "state"), `${base}/logs`]);
  });

  it("a common folder that is a system folder is too wide: the folders are named apart, and said so", () => {
    const data = join(root, "data");
    const result = unitPaths({ outbox: `${data}/outbox`, archive: `${data}/archive`, quarantine: `${data}/quarantine`, stateDir: `${data}/state`, logDir: `${data}/log` }, [data]);
    expect(result).toEqual({
      code: 0,
      stderr: "",
      apart: `${data}/outbox, ${data}/archive, ${data}/quarantine (their common folder is ${data})\n`,
      paths: [`${data}/outbox`, `${data}/archive`, `${data}/quarantine`, `${data}/state`, `${data}/log`],
    });
  });

  it("a common folder one level deep (like /data), or the root, is too wide", () => {
    const top = mkdtempSync("/plutus-unitpaths-");
    const other = mkdtempSync("/plutus-unitpaths-");
    try {
      const shallow = unitPaths({ outbox: `${top}/outbox`, archive: `${top}/archive`, quarantine: `${top}/quarantine`, stateDir: `${top}/state`, logDir: `${top}/log` });
      expect(shallow.apart).toBe(`${top}/outbox, ${top}/archive, ${top}/quarantine (their common folder is ${top})\n`);
      expect(shallow.paths).toEqual([`${top}/outbox`, `${top}/archive`, `${top}/quarantine`, `${top}/state`, `${top}/log`]);
      const rootOnly = unitPaths({ outbox: `${top}/a/outbox`, archive: `${other}/b/archive`, quarantine: `${top}/a/quarantine`, stateDir: `${top}/a/state`, logDir: `${top}/a/log` });
      expect(rootOnly.apart).toBe(`${top}/a/outbox, ${other}/b/archive, ${top}/a/quarantine (their common folder is /)\n`);
    } finally {
      rmSync(top, { recursive: true, force: true });
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("folders on different file systems are grouped by file system: a quarantine on its own mount is its own entry", () => {
    const base = join(root, "lib", "plutus");
    mkdirSync(`${base}/quarantine`, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "plutus-unitpaths", `${base}/quarantine`]);
    mounted = `${base}/quarantine`;
    expect(unitPaths({ outbox: `${base}/outbox`, archive: `${base}/archive`, quarantine: `${base}/quarantine`, stateDir: `${base}/state`, logDir: `${base}/log` })).toEqual({
      code: 0,
      stderr: "",
      apart: "",
      // Outbox and archive share the file system (named by their folder, which holds the rest too).
      paths: [base, `${base}/quarantine`],
    });
  });
});
