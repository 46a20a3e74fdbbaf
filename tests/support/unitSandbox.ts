import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";

/**
 * Runs a systemd service's ExecStart= in the file-system sandbox systemd would give it, on a host
 * where systemd is not PID 1 (this test machine): a private mount namespace (`unshare -m`), each
 * ReadWritePaths= entry bind-mounted onto itself (systemd makes each one a mount of its own, which
 * is what makes a rename between two entries fail with EXDEV), then every other mount remounted
 * read-only except the API file systems /proc, /sys and /dev (ProtectSystem=strict), an empty /tmp
 * (PrivateTmp=yes), and the command run as User=/Group= with an empty environment.
 */
export function spawnInUnitSandbox(unitText: string): ChildProcess {
  const execStart = unitSetting(unitText, "ExecStart").split(" ");
  const user = unitSetting(unitText, "User");
  const group = unitSetting(unitText, "Group");
  if (unitSetting(unitText, "ProtectSystem") !== "strict" || unitSetting(unitText, "PrivateTmp") !== "yes") {
    throw new Error("spawnInUnitSandbox emulates ProtectSystem=strict and PrivateTmp=yes only");
  }
  const writable = unitWritablePaths(unitText);
  const script = [
    "set -eu",
    'n="$1"; shift; writable=("${@:1:n}"); shift "$n"',
    'for p in "${writable[@]}"; do mount --bind -- "$p" "$p"; done',
    "while IFS= read -r escaped; do",
    '  mp="$(printf "%b" "$escaped")"',
    '  case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac',
    '  keep=no; for p in "${writable[@]}"; do case "$mp" in "$p"|"$p"/*) keep=yes ;; esac; done',
    '  [ "$keep" = yes ] || mount -o remount,bind,ro -- "$mp"',
    "done < <(awk '{ print $5 }' /proc/self/mountinfo)",
    "mount -t tmpfs -o mode=1777 tmpfs /tmp",
    'exec setpriv --reuid="$RUN_AS_USER" --regid="$RUN_AS_GROUP" --init-groups env -i "$@"',
  ].join("\n");
  return spawn("unshare", ["--mount", "--propagation", "private", "bash", "-c", script, "bash", String(writable.length), ...writable, ...execStart], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", RUN_AS_USER: user, RUN_AS_GROUP: group },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** ReadWritePaths= as systemd reads it: quoted words, "%%" for "%". */
export function unitWritablePaths(unitText: string): string[] {
  const words = unitSetting(unitText, "ReadWritePaths").match(/"[^"]*"|\S+/g) ?? [];
  return words.map((word) => word.replace(/^"(.*)"$/, "$1").replace(/%%/g, "%"));
}

function unitSetting(unitText: string, key: string): string {
  const found = new RegExp(`^${key}=(.*)$`, "m").exec(unitText);
  if (!found) throw new Error(`the unit has no ${key}=`);
  return found[1];
}

/** A process's mounts: mount point -> its per-mount options (ro/rw, ...), from /proc/<pid>/mountinfo. */
export function mountsOf(pid: number): Map<string, string[]> {
  const mounts = new Map<string, string[]>();
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, "utf8").trim().split("\n")) {
    const fields = line.split(" ");
    mounts.set(fields[4].replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))), fields[5].split(","));
  }
  return mounts;
}
