#!/usr/bin/env bash
# install.sh - installs, upgrades or removes plutus-sync on an Ubuntu/Debian web server.
#
# Run as root from the release bundle (the folder holding plutus-sync.cjs, sync_plutus.sh,
# install.sh and SHA256SUMS), or from /opt/plutus-sync to repair an installation. Relative paths
# (of the script and of --config/--key) are taken from the folder it was started in.
#
#   install.sh --stdin [--outbox-group GROUP]
#       reads ONE JSON document from stdin:
#       {"agentConfig": {...agent configuration...}, "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\n..."}
#   install.sh --config FILE --key FILE [--outbox-group GROUP]
#       the agent configuration and the sync private key as files (manual installs)
#   install.sh --upgrade [--outbox-group GROUP]
#       replaces the program with this bundle's; keeps /etc/plutus (configuration and key) as installed
#   install.sh --uninstall
#       removes the cron entry, the watch service, /opt/plutus-sync, /etc/plutus and the account;
#       keeps every order folder (outbox, archive, quarantine) and the state and log folders
#
#   --watch  (with --stdin, --config/--key or --upgrade) also installs, enables and starts the
#       systemd service plutus-sync-watch (plutus-sync watch: each order within a second); the cron
#       entry stays as the safety net. --cron removes the service again (cron only). Without
#       either, --stdin and --config/--key install cron only, and --upgrade keeps the mode installed.
#
# Idempotent: everything is compared before it is written; a second run with the same input
# changes nothing and says so. Files are written atomically (temporary file, then rename).
#
# Exit status: 0 installed (or removed) and `plutus-sync check` passed; 1 installation failed;
# 2 usage or input error (nothing changed); 4 installed, but `plutus-sync check` failed;
# 5 installed and `check` passed, but the watch service could not be started (see its message).
set -euo pipefail
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
export LC_ALL=C.UTF-8
unset NODE_OPTIONS NODE_PATH

readonly ACCOUNT=plutus
readonly PREFIX=/opt/plutus-sync
readonly ETC_DIR=/etc/plutus
readonly CONFIG_FILE=/etc/plutus/agent.json
readonly KEY_FILE=/etc/plutus/id_ed25519
readonly CRON_FILE=/etc/cron.d/plutus-sync
readonly WATCH_UNIT=plutus-sync-watch.service
readonly UNIT_FILE=/etc/systemd/system/plutus-sync-watch.service
readonly PROGRAM_FILES=(plutus-sync.cjs sync_plutus.sh install.sh SHA256SUMS)
readonly NOLOGIN=/usr/sbin/nologin
readonly MIN_NODE_MAJOR=18
readonly USAGE='usage: install.sh --stdin [--outbox-group GROUP] [--watch|--cron] | --config FILE --key FILE [--outbox-group GROUP] [--watch|--cron] | --upgrade [--outbox-group GROUP] [--watch|--cron] | --uninstall'

changes=0
work=""
pending_tmp=""

say() { printf 'install.sh: %s\n' "$*"; }
change() { changes=$((changes + 1)); say "$*"; }
warn() { printf 'install.sh: WARNING: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$1" >&2; exit "${2:-1}"; }
usage_error() { printf 'install.sh: error: %s\n%s\n' "$1" "${USAGE}" >&2; exit 2; }
# Whatever fails unexpectedly still ends with one "install.sh: error:" line (a command substitution's
# subshell leaves the report to the shell that ran it). BASH_COMMAND is the script's text, unexpanded.
on_error() {
  if [ "${BASH_SUBSHELL}" -eq 0 ]; then
    printf 'install.sh: error: unexpected failure (exit %s) at line %s: %s\n' "$1" "$3" "$2" >&2
  fi
  exit "$1"
}
set -E
trap 'on_error "$?" "${BASH_COMMAND}" "${LINENO}"' ERR

cleanup() {
  if [ -n "${pending_tmp}" ]; then rm -f -- "${pending_tmp}"; fi
  if [ -n "${work}" ]; then rm -rf -- "${work}"; fi
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

# --- arguments -----------------------------------------------------------------------------

# The bundle's folder and the given files, resolved against the folder install.sh was started in
# (before it changes to /).
bundle="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" 2>/dev/null && pwd -P)" \
  || die "cannot find the folder install.sh was started from (${BASH_SOURCE[0]})"
started_in="$(pwd -P 2>/dev/null || true)"
# make_absolute VAR - prefixes VAR's relative path with the folder install.sh was started in.
make_absolute() {
  local path="${!1}"
  case "${path}" in
    /*) return 0 ;;
    *) [ -n "${started_in}" ] || die "cannot resolve ${path}: the current folder is not accessible; give an absolute path" 2
       while [[ "${path}" == ./* ]]; do path="${path#./}"; done
       printf -v "$1" '%s/%s' "${started_in}" "${path}" ;;
  esac
}

mode=""
config_arg=""
key_arg=""
outbox_group=""
agent_mode=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stdin | --upgrade | --uninstall)
      [ -z "${mode}" ] || usage_error "$1 cannot be combined with --${mode}"
      mode="${1#--}" ;;
    --config) [ $# -ge 2 ] || usage_error "--config needs a file"; config_arg="$2"; shift ;;
    --key) [ $# -ge 2 ] || usage_error "--key needs a file"; key_arg="$2"; shift ;;
    --outbox-group) [ $# -ge 2 ] || usage_error "--outbox-group needs a group name"; outbox_group="$2"; shift ;;
    --watch | --cron)
      [ -z "${agent_mode}" ] || [ "${agent_mode}" = "${1#--}" ] || usage_error "--watch and --cron exclude each other"
      agent_mode="${1#--}" ;;
    -h | --help) sed -n '2,23p' "${bundle}/$(basename -- "${BASH_SOURCE[0]}")" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done
if [ -n "${config_arg}" ] || [ -n "${key_arg}" ]; then
  [ -z "${mode}" ] || usage_error "--config/--key cannot be combined with --${mode}"
  if [ -z "${config_arg}" ] || [ -z "${key_arg}" ]; then usage_error "--config and --key go together"; fi
  mode=files
  make_absolute config_arg
  make_absolute key_arg
fi
[ -n "${mode}" ] || usage_error "say what to do: --stdin, --config FILE --key FILE, --upgrade, or --uninstall"
[ "${mode}" != uninstall ] || [ -z "${agent_mode}" ] || usage_error "--${agent_mode} does not go with --uninstall (it removes both)"
[ -z "${outbox_group}" ] || [[ "${outbox_group}" =~ ^[A-Za-z_][A-Za-z0-9_.-]{0,31}$ ]] || usage_error "--outbox-group: not a valid group name: ${outbox_group}"
[ "$(id -u)" -eq 0 ] || die "must run as root (it creates an account, /opt/plutus-sync, /etc/plutus and /etc/cron.d/plutus-sync)"
cd /

work="$(mktemp -d "${TMPDIR:-/tmp}/plutus-install.XXXXXX")"

# --- helpers ---------------------------------------------------------------------------------

# Prints the path of the Node.js the cron job will use (same order as sync_plutus.sh), or nothing.
find_node() {
  if [ -x /usr/bin/node ]; then echo /usr/bin/node; else command -v node || true; fi
}

node_version() { "$1" -e 'process.stdout.write(process.versions.node)' 2>/dev/null || true; }

apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  # On first boot cloud-init or unattended-upgrades may hold the dpkg lock: wait for it, not fail.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}

# Node.js >= 18 for the agent: the distribution's package when there is none at all.
ensure_node() {
  node="$(find_node)"
  if [ -z "${node}" ]; then
    say "Node.js not found: installing the distribution's nodejs package"
    apt_install nodejs || die "Node.js is not installed and 'apt-get install nodejs' failed; install Node.js ${MIN_NODE_MAJOR} or later and re-run"
    change "installed the distribution's nodejs package"
    node="$(find_node)"
    [ -n "${node}" ] || die "the nodejs package installed no node executable; install Node.js ${MIN_NODE_MAJOR} or later and re-run"
  fi
  local version major
  version="$(node_version "${node}")"
  [ -n "${version}" ] || die "${node} does not run; install Node.js ${MIN_NODE_MAJOR} or later and re-run"
  major="${version%%.*}"
  if ! [[ "${major}" =~ ^[0-9]+$ ]] || [ "${major}" -lt "${MIN_NODE_MAJOR}" ]; then
    die "Node.js ${version} at ${node} is too old: plutus-sync needs Node.js ${MIN_NODE_MAJOR} or later. Ubuntu 24.04 and later ship it ('apt-get install nodejs'); on older releases install Node.js ${MIN_NODE_MAJOR}+ from NodeSource, then re-run install.sh"
  fi
  say "Node.js ${version} at ${node}"
}

# Compares numerically, so "640" and "0640" agree.
mode_is() { [ "$((8#$(stat -c %a -- "$1")))" -eq "$((8#$2))" ]; }

# install_file SRC DST OWNER GROUP MODE - atomic (temporary file + rename), only when different.
install_file() {
  local src="$1" dst="$2" owner="$3" group="$4" mode="$5"
  if [ -L "${dst}" ]; then rm -f -- "${dst}"; fi
  if [ -f "${dst}" ] && cmp -s -- "${src}" "${dst}" && [ "$(stat -c %U:%G -- "${dst}")" = "${owner}:${group}" ] && mode_is "${dst}" "${mode}"; then
    say "unchanged: ${dst}"
    return 0
  fi
  local what=created
  if [ -e "${dst}" ]; then what=updated; fi
  pending_tmp="$(mktemp "$(dirname -- "${dst}")/.$(basename -- "${dst}").XXXXXX")"
  cat -- "${src}" >"${pending_tmp}"
  chown "${owner}:${group}" -- "${pending_tmp}"
  chmod "${mode}" -- "${pending_tmp}"
  sync -- "${pending_tmp}"
  mv -f -- "${pending_tmp}" "${dst}"
  pending_tmp=""
  change "${what} ${dst} (${owner}:${group} ${mode})"
}

# Accounts in the web application's group (primary or supplementary): whatever they can write
# they can swap for a link.
web_accounts() {
  local gid members
  gid="$(getent group "${outbox_group}" | cut -d: -f3)"
  members="$(getent group "${outbox_group}" | cut -d: -f4)"
  { getent passwd | awk -F: -v gid="${gid}" '$4 == gid { print $1 }'; tr ',' '\n' <<<"${members}"; } | sed '/^$/d' | sort -u
}

# check_folder_chain WHAT PATH - every existing folder above PATH must be a real folder, owned by
# root and writable by nobody the web application can act as: root then never follows a link that
# someone else placed while it creates, chowns and chmods PATH. (A group-writable parent is accepted
# when no account of the web application's group is in that group, e.g. Ubuntu's /var/log,
# root:syslog 0775.)
check_folder_chain() {
  local what="$1" dir="$2" parent="" part owner group gid perms account parts=()
  IFS=/ read -r -a parts <<<"${dir#/}"
  unset 'parts[${#parts[@]}-1]'
  for part in "${parts[@]}"; do
    parent="${parent}/${part}"
    if [ -L "${parent}" ]; then die "${what} (${dir}): ${parent} is a symbolic link; plutus-sync folders and the folders above them must be real folders" 2; fi
    [ -e "${parent}" ] || return 0
    [ -d "${parent}" ] || die "${what} (${dir}): ${parent} exists and is not a folder" 2
    IFS=' ' read -r owner group gid perms <<<"$(stat -c '%U %G %g %a' -- "${parent}")"
    perms=$((8#${perms}))
    if [ "${owner}" != root ]; then
      die "${what} (${dir}): ${parent} is owned by ${owner}, not root; every folder above a plutus-sync folder must be owned by root and writable only by root (or its owner could swap the folder for a link): chown root ${parent}, or choose another folder" 2
    fi
    if [ $((perms & 8#002)) -ne 0 ]; then
      die "${what} (${dir}): ${parent} is writable by everyone (mode $(printf '%04o' "${perms}")); every folder above a plutus-sync folder must be writable only by root: chmod o-w ${parent}, or choose another folder" 2
    fi
    if [ $((perms & 8#020)) -ne 0 ] && [ "${gid}" -ne 0 ]; then
      while IFS= read -r account; do
        if [[ " $(id -G -- "${account}") " == *" ${gid} "* ]]; then
          die "${what} (${dir}): ${parent} is writable by group ${group}, which the web application's account ${account} belongs to; every folder above a plutus-sync folder must be writable only by root: chmod g-w ${parent}, or choose another folder" 2
        fi
      done < <(web_accounts)
    fi
  done
}

# ensure_dir PATH OWNER GROUP MODE - creates missing parents root:root 0755; owner/mode on PATH.
ensure_dir() {
  local dir="$1" owner="$2" group="$3" mode="$4"
  local parent="" part
  local - IFS=/
  set -f
  for part in ${dir#/}; do
    parent="${parent}/${part}"
    if [ -L "${parent}" ]; then die "${parent} is a symbolic link; plutus-sync folders must be real folders (${dir})"; fi
    if [ -e "${parent}" ] && [ ! -d "${parent}" ]; then die "${parent} exists and is not a folder (${dir})"; fi
    if [ ! -e "${parent}" ]; then
      mkdir -m 0755 -- "${parent}"
      if [ "${parent}" != "${dir}" ]; then change "created ${parent} (root:root 0755)"; fi
    elif [ "${parent}" = "${dir}" ]; then
      if [ "$(stat -c %U:%G -- "${dir}")" = "${owner}:${group}" ] && mode_is "${dir}" "${mode}"; then
        say "unchanged: ${dir}"
        return 0
      fi
      chown -h "${owner}:${group}" -- "${dir}"
      chmod "0${mode}" -- "${dir}"
      change "set ${dir} to ${owner}:${group} ${mode}"
      return 0
    fi
  done
  chown -h "${owner}:${group}" -- "${dir}"
  chmod "0${mode}" -- "${dir}"
  change "created ${dir} (${owner}:${group} ${mode})"
}

# Entries handed to root by --uninstall (or left to a deleted uid or group) become the account's
# again. Whoever can write these folders (www-data in the outbox, plutus everywhere) can rename and
# link entries at any moment, so this acts on descriptors (OWNERSHIP_TOOL adopt): only regular files
# and folders, a file only while its one and only name is the entry in the folder (never a hard link
# to a file elsewhere), links, fifos and sockets never (their owner does not matter to the agent).
adopt_orphans() {
  local dir="$1" fix_group="$2" counts owners groups deep
  counts="$("${node}" -e "${OWNERSHIP_TOOL}" adopt "${dir}" "$(id -u "${ACCOUNT}")" "$(id -g "${ACCOUNT}")" "${fix_group}")" \
    || die "could not give ${ACCOUNT} the entries in ${dir} owned by root or a deleted account"
  read -r owners groups deep <<<"${counts}"
  if [ "${owners}" -gt 0 ]; then change "gave ${owners} entr(y/ies) in ${dir} owned by root or a deleted account to ${ACCOUNT}"; fi
  if [ "${groups}" -gt 0 ]; then change "gave ${groups} entr(y/ies) in ${dir} with group root or a deleted group to group ${ACCOUNT}"; fi
  if [ "${deep}" -gt 0 ]; then warn "${dir} holds folders nested deeper than 64 levels: what is below them was left as it is"; fi
}

# The web application's files in the outbox must be readable by the agent whatever umask the web
# application runs with: a default ACL gives every new file an entry for the plutus account.
readonly OUTBOX_ACL="user::rwx
group::rwx
other::---
default:user::rwx
default:user:${ACCOUNT}:rwx
default:group::rwx
default:mask::rwx
default:other::---"

ensure_outbox_acl() {
  local dir="$1"
  if ! command -v setfacl >/dev/null 2>&1; then
    say "setfacl not found: installing the acl package"
    if apt_install acl; then change "installed the acl package"; fi
  fi
  if ! command -v setfacl >/dev/null 2>&1 || ! command -v getfacl >/dev/null 2>&1; then
    warn "setfacl/getfacl unavailable: the web application must create order files readable by others (umask 022, mode 0644) or the agent cannot read them; install the acl package and re-run install.sh to remove this requirement"
    return 0
  fi
  local current
  current="$(getfacl --omit-header --absolute-names -- "${dir}" 2>/dev/null | sed '/^$/d')"
  if [ "${current}" = "${OUTBOX_ACL}" ]; then
    say "unchanged: ACL of ${dir}"
    return 0
  fi
  local spec
  spec="$(printf '%s' "${OUTBOX_ACL}" | tr '\n' ',')"
  if ! setfacl --set "${spec}" -- "${dir}" 2>"${work}/setfacl.err"; then
    warn "cannot set an ACL on ${dir} ($(head -n 1 "${work}/setfacl.err")): the web application must create order files readable by others (umask 022, mode 0644) or the agent cannot read them"
    return 0
  fi
  change "set ACL of ${dir}: new files readable and movable by ${ACCOUNT} whatever the web application's umask"
}

# Files already waiting in the outbox (written before the ACL existed, or kept by --uninstall).
# www-data can swap any outbox entry for a link, or (with fs.protected_hardlinks=0) for a hard link
# to any file, at any moment, so nothing here acts by path: OWNERSHIP_TOOL grant opens each entry
# without following links, and gives the account an ACL entry only on a regular file owned by one
# of the web application's accounts (never root or the account itself) whose one and only name is
# the entry in the outbox; getfacl/setfacl get the descriptors (/proc/self/fd/N), 256 files a call.
#
# OWNERSHIP_TOOL: the descriptor-based helpers of grant_waiting_files and adopt_orphans. Folders are
# walked through descriptors (/proc/self/fd/DIR/NAME resolves NAME inside the opened folder, like
# openat), names are bytes (any name, UTF-8 or not). An entry's inode is acted on only after lstat
# of its name, made after it was opened, shows that inode with one link: at that instant the name in
# our folder was its only name, so it was not a file elsewhere (whose own name cannot be removed by
# whoever races us here).
readonly OWNERSHIP_TOOL='
"use strict";
const fs = require("fs");
const { spawnSync } = require("child_process");
const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY, O_DIRECTORY } = fs.constants;
const [mode, dir, ...args] = process.argv.slice(1);
const at = (dirFd, name) => Buffer.concat([Buffer.from("/proc/self/fd/" + dirFd + "/"), name]);
const open = (path, flags) => {
  try { return fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | flags); } catch { return undefined; }
};
const onlyNameHere = (dirFd, name, st) => {
  try {
    const now = fs.lstatSync(at(dirFd, name), { bigint: true });
    return now.dev === st.dev && now.ino === st.ino && now.nlink === 1n;
  } catch { return false; }
};
const names = (dirFd) => fs.readdirSync("/proc/self/fd/" + dirFd, { encoding: "buffer" });
const top = open(dir, O_DIRECTORY);
if (top === undefined) { process.stderr.write("install.sh: error: cannot open " + dir + "\n"); process.exit(1); }
const topDev = fs.fstatSync(top, { bigint: true }).dev;

const grant = (account, accountUid, webUids) => {
  const owners = new Set(webUids.split(",").filter((u) => /^[0-9]+$/.test(u) && u !== "0" && u !== accountUid).map(BigInt));
  const hasEntry = new RegExp("^user:" + account + ":rw", "m");
  const BATCH = 256;
  let granted = 0;
  let fds = [];
  // Child fd 3 + i is fds[i]; returns the child fds whose ACL has no rw entry for the account.
  const lacking = (stdio, childFds) => {
    const out = spawnSync("getfacl", ["--absolute-names", ...childFds.map((n) => "/proc/self/fd/" + n)], { stdio, encoding: "utf8", maxBuffer: 1 << 26 }).stdout || "";
    const missing = new Set(childFds);
    for (const block of out.split("\n\n")) {
      const file = /^# file: \/proc\/self\/fd\/(\d+)$/m.exec(block);
      if (file && hasEntry.test(block)) missing.delete(Number(file[1]));
    }
    return [...missing];
  };
  const flush = () => {
    if (fds.length === 0) return;
    const stdio = ["ignore", "pipe", "ignore", ...fds];
    const todo = lacking(stdio, fds.map((_, i) => 3 + i));
    if (todo.length > 0) {
      spawnSync("setfacl", ["-m", "u:" + account + ":rw", ...todo.map((n) => "/proc/self/fd/" + n)], { stdio });
      granted += todo.length - lacking(stdio, todo).length;
    }
    for (const fd of fds) fs.closeSync(fd);
    fds = [];
  };
  for (const name of names(top)) {
    const fd = open(at(top, name), 0);
    if (fd === undefined) continue;
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile() || !owners.has(st.uid) || !onlyNameHere(top, name, st)) { fs.closeSync(fd); continue; }
    fds.push(fd);
    if (fds.length === BATCH) flush();
  }
  flush();
  process.stdout.write(String(granted));
};

const adopt = (accountUid, accountGid, fixGroup) => {
  const MAX_DEPTH = 64;
  const known = (db) => { const seen = new Map(); return (id) => { if (!seen.has(id)) seen.set(id, spawnSync("getent", [db, String(id)], { stdio: "ignore" }).status === 0); return seen.get(id); }; };
  const knownUid = known("passwd");
  const knownGid = known("group");
  const orphanOwner = (st) => st.uid === 0n || !knownUid(st.uid);
  const orphanGroup = (st) => fixGroup === "yes" && (st.gid === 0n || !knownGid(st.gid));
  let owners = 0, groups = 0, deep = 0;
  const walk = (dirFd, depth) => {
    for (const name of names(dirFd)) {
      let st;
      try { st = fs.lstatSync(at(dirFd, name), { bigint: true }); } catch { continue; }
      const isDir = st.isDirectory();
      if (st.dev !== topDev || (!isDir && !(st.isFile() && (orphanOwner(st) || orphanGroup(st))))) continue;
      const fd = open(at(dirFd, name), isDir ? O_DIRECTORY : 0);
      if (fd === undefined) continue;
      try {
        const now = fs.fstatSync(fd, { bigint: true });
        if (now.dev !== topDev || now.isDirectory() !== isDir || (!isDir && !now.isFile())) continue;
        const uid = orphanOwner(now) ? Number(accountUid) : -1;
        const gid = orphanGroup(now) ? Number(accountGid) : -1;
        if ((uid !== -1 || gid !== -1) && (isDir || onlyNameHere(dirFd, name, now))) {
          fs.fchownSync(fd, uid, gid);
          if (uid !== -1) owners++;
          if (gid !== -1) groups++;
        }
        if (isDir) { if (depth < MAX_DEPTH) walk(fd, depth + 1); else deep++; }
      } finally { fs.closeSync(fd); }
    }
  };
  walk(top, 1);
  process.stdout.write(owners + " " + groups + " " + deep);
};

if (mode === "grant") grant(...args);
else if (mode === "adopt") adopt(...args);
else process.exit(2);
'

grant_waiting_files() {
  local dir="$1" count uids="" account
  command -v setfacl >/dev/null 2>&1 && command -v getfacl >/dev/null 2>&1 || return 0
  while IFS= read -r account; do uids="${uids},$(id -u -- "${account}" 2>/dev/null || true)"; done < <(web_accounts)
  count="$("${node}" -e "${OWNERSHIP_TOOL}" grant "${dir}" "${ACCOUNT}" "$(id -u "${ACCOUNT}")" "${uids#,}")" \
    || die "could not give ${ACCOUNT} read access to the files waiting in ${dir}"
  if [ "${count}" -gt 0 ]; then change "gave ${ACCOUNT} read access to ${count} file(s) already waiting in ${dir}"; fi
}

# Reads and checks the input with Node (never eval), leaving work/agent.json, work/id_key and
# work/folders (outbox archive quarantine stateDir logDir, NUL-separated). Values never reach a
# command line or the output.
readonly PARSER='
"use strict";
const fs = require("fs");
const posix = require("path").posix;
const [mode, first, second, out] = process.argv.slice(1);
const fail = (message) => { process.stderr.write("install.sh: error: " + message + "\n"); process.exit(2); };
const readText = (file, what) => {
  try { return fs.readFileSync(file, "utf8"); } catch (e) { return fail("cannot read " + what + ": " + (e.code || e.message)); }
};
const parseJson = (text, what) => {
  // Not the parser message: it can quote the input, and the input holds the private key.
  try { return JSON.parse(text.replace(/^\uFEFF/, "")); } catch { return fail(what + " is not valid JSON"); }
};
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const FOLDERS = ["outbox", "archive", "quarantine", "stateDir", "logDir"];
let config, key;
if (mode === "stdin") {
  const doc = parseJson(readText(first, "stdin"), "the document on stdin");
  if (!isObject(doc)) fail("stdin must hold one JSON object: {\"agentConfig\": {...}, \"privateKey\": \"-----BEGIN OPENSSH PRIVATE KEY-----...\"}");
  const unknown = Object.keys(doc).filter((k) => k !== "agentConfig" && k !== "privateKey");
  if (unknown.length > 0) fail("unknown key(s) in the document on stdin: " + unknown.map((k) => JSON.stringify(k)).join(", ") + " (expected agentConfig and privateKey)");
  if (!("agentConfig" in doc)) fail("agentConfig is missing from the document on stdin");
  if (typeof doc.privateKey !== "string") fail("privateKey is missing from the document on stdin (a string holding the OpenSSH private key)");
  config = doc.agentConfig;
  key = doc.privateKey;
} else if (mode === "files") {
  config = parseJson(readText(first, "configuration " + first), "configuration " + first);
  key = readText(second, "private key " + second);
} else if (mode === "folders") {
  // Uninstall: list the folders an installed configuration names, whatever else it holds.
  let installed = null;
  try { installed = JSON.parse(fs.readFileSync(first, "utf8")); } catch { process.exit(0); }
  if (isObject(installed)) for (const k of FOLDERS) if (typeof installed[k] === "string") process.stdout.write(k + "\t" + installed[k].replace(/[\x00-\x1f]/g, "?") + "\n");
  process.exit(0);
}
if (!isObject(config)) fail("agentConfig must be a JSON object (the agent configuration)");
const SYSTEM = new Set(["/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt", "/proc",
  "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin",
  "/usr/share", "/var/backups", "/var/cache", "/var/lib", "/var/local", "/var/log", "/var/mail", "/var/opt", "/var/spool",
  "/var/www", "/home/ubuntu"]);
const VOLATILE_OR_OURS = ["/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/run", "/etc/plutus", "/opt/plutus-sync"];
const folders = [];
for (const k of FOLDERS) {
  const v = config[k];
  if (typeof v !== "string") fail("agentConfig." + k + " must be the absolute path of a folder");
  if (/[\x00-\x1f\x7f]/.test(v)) fail("agentConfig." + k + " must not contain control characters");
  if (!v.startsWith("/") || posix.normalize(v) !== v || v.endsWith("/")) fail("agentConfig." + k + " must be a normalised absolute path (no ./.., no double or trailing slash): " + v);
  if (v.split("/").length < 3) fail("agentConfig." + k + " must be at least two levels deep (e.g. /var/lib/plutus/outbox), not " + v);
  if (SYSTEM.has(v)) fail("agentConfig." + k + " is a system folder (" + v + "); use a folder of its own, e.g. /var/lib/plutus/" + k);
  const under = VOLATILE_OR_OURS.find((p) => v === p || v.startsWith(p + "/"));
  if (under) fail("agentConfig." + k + " (" + v + ") must not be under " + under + " (temporary, virtual or managed by install.sh)");
  folders.push([k, v]);
}
for (const [a, av] of folders) for (const [b, bv] of folders) {
  if (a !== b && (av === bv || bv.startsWith(av + "/"))) fail("agentConfig." + b + " (" + bv + ") must not be the same as or inside agentConfig." + a + " (" + av + ")");
}
if (!isObject(config.remote)) fail("agentConfig.remote must be a JSON object");
if (config.remote.privateKeyPath !== "/etc/plutus/id_ed25519") fail("agentConfig.remote.privateKeyPath must be /etc/plutus/id_ed25519, where install.sh puts the key (found " + JSON.stringify(String(config.remote.privateKeyPath)) + ")");
key = key.replace(/\r\n/g, "\n").trim() + "\n";
if (!/^-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----\n[A-Za-z0-9+\/=\n:, -]+\n-----END ([A-Z0-9]+ )*PRIVATE KEY-----\n$/.test(key)) {
  fail("the private key is not an OpenSSH or PEM private key (-----BEGIN ... PRIVATE KEY----- ... -----END ... PRIVATE KEY-----)");
}
fs.writeFileSync(out + "/agent.json", JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
fs.writeFileSync(out + "/id_key", key, { mode: 0o600 });
fs.writeFileSync(out + "/folders", folders.map(([, v]) => v + "\0").join(""), { mode: 0o600 });
fs.writeFileSync(out + "/system-folders", [...SYSTEM].map((v) => v + "\0").join(""), { mode: 0o600 });
'

cron_file_text() {
  cat <<'EOF'
# /etc/cron.d/plutus-sync - installed by /opt/plutus-sync/install.sh; re-run it rather than editing.
# One plutus-sync delivery pass every 5 minutes as the plutus account. The agent logs to its log
# folder (logDir in /etc/plutus/agent.json); anything it prints on stderr goes to syslog with the
# tag plutus-sync (journalctl -t plutus-sync).
SHELL=/bin/sh
PATH=/usr/bin:/bin
HOME=/
*/5 * * * * plutus /opt/plutus-sync/sync_plutus.sh 2>&1 >/dev/null | logger -t plutus-sync -p user.warning
EOF
}

# check_unit_path WHAT PATH - refuses (before anything changes) a folder the watch unit's
# ReadWritePaths= cannot name: systemd reads a double quote or a backslash inside a quoted word as
# quoting (control characters are refused for every mode by the input check).
check_unit_path() {
  if [[ "$2" == *[\"\\]* ]]; then
    die "$1 ($2) has a double quote or a backslash, which the watch service's unit cannot name (ReadWritePaths=); choose another folder, or install cron only (without --watch; --upgrade --cron)" 2
  fi
}

# A folder path (checked by check_unit_path) as one systemd unit-file word: quoted, so spaces stay
# in it, and "%" doubled, or systemd would expand it as a specifier (%d, %h, ...).
unit_path_word() {
  printf '"%s"' "${1//%/%%}"
}

# The watch unit's ReadWritePaths=, from work/folders and work/system-folders (left by PARSER, after
# the folders exist): work/unit-paths (NUL-separated); on stdout, one line per set of folders that
# had to be named apart. systemd makes each entry a bind mount of its own, and rename(2) between
# two mounts fails with EXDEV even on one file system: the outbox, archive and quarantine, which
# orders move between, are named by their deepest common folder when they share a file system.
# That folder must be the agent's own: at least two levels deep and not a system folder (the
# folders above the agent's are root-owned and writable only by root, so the account gains nothing
# there). Otherwise they stay apart and moves between them are copies. State and log folders need
# no renames across; they are named unless already inside an entry.
readonly UNIT_PATHS_TOOL='
"use strict";
const fs = require("fs");
const work = process.argv[1];
const read = (name) => fs.readFileSync(work + "/" + name, "utf8").split("\0").filter((v) => v !== "");
const [outbox, archive, quarantine, state, logs] = read("folders");
const system = new Set(read("system-folders"));
const commonFolder = (paths) => {
  let parts = paths[0].split("/");
  for (const path of paths.slice(1)) {
    const other = path.split("/");
    let i = 0;
    while (i < parts.length && i < other.length && parts[i] === other[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join("/") || "/";
};
const ownFolder = (path) => path.split("/").length >= 3 && !system.has(path);
const byDevice = new Map();
for (const path of [outbox, archive, quarantine]) {
  const dev = fs.statSync(path).dev;
  byDevice.set(dev, [...(byDevice.get(dev) || []), path]);
}
const paths = [];
const apart = [];
for (const group of byDevice.values()) {
  const common = group.length > 1 ? commonFolder(group) : group[0];
  if (group.length === 1 || ownFolder(common)) paths.push(common);
  else {
    paths.push(...group);
    apart.push(group.join(", ") + " (their common folder is " + common + ")");
  }
}
for (const path of [state, logs]) if (!paths.some((p) => path === p || path.startsWith(p + "/"))) paths.push(path);
fs.writeFileSync(work + "/unit-paths", paths.map((p) => p + "\0").join(""), { mode: 0o600 });
process.stdout.write(apart.map((line) => line + "\n").join(""));
'

# watch_unit_text NODE PATH... (the ReadWritePaths= entries)
watch_unit_text() {
  local node_bin="$1"
  shift
  local rw="" p
  for p in "$@"; do rw="${rw} $(unit_path_word "${p}")"; done
  cat <<EOF
# ${UNIT_FILE} - installed by ${PREFIX}/install.sh --watch; re-run it rather than editing.
# plutus-sync watch: delivers each order as soon as it is complete. The cron entry
# (${CRON_FILE}) keeps running as the safety net; the two take turns through the pass lock.
[Unit]
Description=plutus-sync watch (PLUTUS orders to the ERP inbox within a second)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=simple
User=${ACCOUNT}
Group=${ACCOUNT}
ExecStart=${node_bin} --max-semi-space-size=8 ${PREFIX}/plutus-sync.cjs watch --config ${CONFIG_FILE}
Restart=on-failure
RestartSec=5
# The watcher settles in-flight work and exits within 10 s of SIGTERM.
KillSignal=SIGTERM
TimeoutStopSec=15
UMask=0027
SyslogIdentifier=plutus-sync-watch
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
ReadWritePaths=${rw# }

[Install]
WantedBy=multi-user.target
EOF
}

systemd_running() { [ -d /run/systemd/system ]; }

# Stops, disables and removes the watch service (cron only, or uninstall); $1 is said after it.
remove_watch_unit() {
  [ -e "${UNIT_FILE}" ] || [ -L "${UNIT_FILE}" ] || return 0
  if systemd_running; then
    systemctl disable --now "${WATCH_UNIT}" >/dev/null 2>&1 || warn "could not stop ${WATCH_UNIT}"
  else
    systemctl disable "${WATCH_UNIT}" >/dev/null 2>&1 || true
  fi
  rm -f -- "${UNIT_FILE}"
  if systemd_running; then systemctl daemon-reload || true; fi
  change "removed the watch service ${WATCH_UNIT}${1:-}"
}

# --- uninstall -------------------------------------------------------------------------------

uninstall() {
  local kept=""
  if [ -f "${CONFIG_FILE}" ]; then
    local node_bin
    node_bin="$(find_node)"
    if [ -n "${node_bin}" ]; then kept="$("${node_bin}" -e "${PARSER}" folders "${CONFIG_FILE}" "" "${work}" || true)"; fi
  fi
  remove_watch_unit
  if [ -e "${CRON_FILE}" ] || [ -L "${CRON_FILE}" ]; then
    rm -f -- "${CRON_FILE}"
    change "removed ${CRON_FILE}"
  fi
  if getent passwd "${ACCOUNT}" >/dev/null; then
    # A pass that already started finishes on its own (it ends before its deadline); then stop.
    local waited=0
    while pgrep -u "${ACCOUNT}" >/dev/null 2>&1 && [ "${waited}" -lt 60 ]; do
      [ "${waited}" -gt 0 ] || say "waiting up to 60 s for a running plutus-sync pass to end"
      sleep 1
      waited=$((waited + 1))
    done
    if pgrep -u "${ACCOUNT}" >/dev/null 2>&1; then
      pkill -TERM -u "${ACCOUNT}" || true
      sleep 5
      pkill -KILL -u "${ACCOUNT}" || true
      sleep 1
      change "stopped the running plutus-sync pass (its journal lets a later installation finish it)"
    fi
  fi
  if [ -e "${PREFIX}" ]; then
    rm -rf -- "${PREFIX}"
    change "removed ${PREFIX}"
  fi
  if [ -e "${ETC_DIR}" ]; then
    rm -rf -- "${ETC_DIR}"
    change "removed ${ETC_DIR} (configuration and private key)"
  fi
  if getent passwd "${ACCOUNT}" >/dev/null; then
    # Nothing kept may stay owned by (or in an ACL entry for) a uid a future, unrelated account could get.
    local path
    while IFS=$'\t' read -r _ path; do
      if [ -n "${path}" ] && [ -d "${path}" ]; then
        find "${path}" -xdev -user "${ACCOUNT}" -execdir chown -h root -- {} +
        find "${path}" -xdev -group "${ACCOUNT}" -execdir chgrp -h root -- {} +
        if command -v setfacl >/dev/null 2>&1; then
          find "${path}" -xdev ! -type l -execdir setfacl -x "u:${ACCOUNT}" -- {} + 2>/dev/null || true
          find "${path}" -xdev -type d -execdir setfacl -x "d:u:${ACCOUNT}" -- {} + 2>/dev/null || true
        fi
      fi
    done <<<"${kept}"
    userdel "${ACCOUNT}"
    change "removed account ${ACCOUNT} (what it owned in the kept folders now belongs to root)"
  fi
  if getent group "${ACCOUNT}" >/dev/null; then
    groupdel "${ACCOUNT}"
    change "removed group ${ACCOUNT}"
  fi
  if [ -n "${kept}" ]; then
    say "kept, not removed (orders, journal and logs; delete them yourself once no longer needed):"
    printf '%s\n' "${kept}" | while IFS=$'\t' read -r name path; do
      printf 'install.sh:   %-10s %s\n' "${name}" "${path}"
    done
  fi
  if [ "${changes}" -eq 0 ]; then
    say "nothing to remove: plutus-sync is not installed"
  else
    say "plutus-sync removed (${changes} change(s)); order folders kept"
  fi
}

# --- install ---------------------------------------------------------------------------------

check_outbox_group() {
  outbox_group="${outbox_group:-www-data}"
  getent group "${outbox_group}" >/dev/null || die "group ${outbox_group} does not exist: pass the web application's group with --outbox-group (default www-data)" 2
}

# Prints "plutus-sync <version> (bundle <first 12 hex of the SHA-256 of SHA256SUMS>)" for a program folder.
program_version() {
  local dir="$1" version
  version="$(env -i PATH=/usr/bin:/bin "${node}" "${dir}/plutus-sync.cjs" --version 2>/dev/null || true)"
  printf '%s (bundle %s)' "${version:-plutus-sync, version unknown}" "$(sha256sum <"${dir}/SHA256SUMS" | cut -c1-12)"
}

install() {
  local f
  for f in "${PROGRAM_FILES[@]}"; do
    [ -f "${bundle}/${f}" ] || die "${bundle}/${f} is missing: run install.sh from a complete release bundle"
  done
  (cd -- "${bundle}" && sha256sum --check --strict --quiet SHA256SUMS >"${work}/sha.out" 2>&1) \
    || die "the release bundle in ${bundle} does not match its SHA256SUMS (incomplete or modified copy): $(tr '\n' ' ' <"${work}/sha.out")"
  case "${mode}" in
    stdin)
      head -c 1048577 >"${work}/input"
      [ "$(stat -c %s "${work}/input")" -le 1048576 ] || die "the document on stdin is larger than 1 MiB" 2
      [ -s "${work}/input" ] || die "nothing on stdin: expected {\"agentConfig\": {...}, \"privateKey\": \"...\"}" 2
      ;;
    files)
      [ -f "${config_arg}" ] || die "--config ${config_arg}: no such file" 2
      [ -f "${key_arg}" ] || die "--key ${key_arg}: no such file" 2
      ;;
    upgrade)
      # The installed configuration and key are the input, and stay exactly as they are.
      if [ ! -f "${CONFIG_FILE}" ] || [ ! -f "${KEY_FILE}" ] || [ ! -f "${PREFIX}/plutus-sync.cjs" ]; then
        die "--upgrade: plutus-sync is not installed here (${CONFIG_FILE}, ${KEY_FILE} or ${PREFIX}/plutus-sync.cjs is missing); install with --config FILE --key FILE or --stdin" 2
      fi
      config_arg="${CONFIG_FILE}"
      key_arg="${KEY_FILE}"
      ;;
  esac
  if [ "${mode}" != upgrade ]; then check_outbox_group; fi

  ensure_node
  if [ "${mode}" = stdin ]; then
    "${node}" -e "${PARSER}" stdin "${work}/input" "" "${work}" || exit 2
    rm -f -- "${work}/input"
  else
    "${node}" -e "${PARSER}" files "${config_arg}" "${key_arg}" "${work}" || exit 2
  fi
  local folders=()
  mapfile -d '' -t folders <"${work}/folders"
  local outbox="${folders[0]}" archive="${folders[1]}" quarantine="${folders[2]}" state="${folders[3]}" logs="${folders[4]}"
  if [ "${mode}" = upgrade ]; then
    # An upgrade keeps the outbox's group unless told otherwise.
    if [ -z "${outbox_group}" ] && [ -d "${outbox}" ] && [ ! -L "${outbox}" ]; then outbox_group="$(stat -c %G -- "${outbox}")"; fi
    check_outbox_group
  fi
  # An upgrade keeps the mode installed unless told otherwise.
  if [ -z "${agent_mode}" ]; then
    agent_mode=cron
    if [ "${mode}" = upgrade ] && [ -f "${UNIT_FILE}" ]; then agent_mode=watch; fi
  fi
  if [ "${agent_mode}" = watch ]; then
    check_unit_path agentConfig.outbox "${outbox}"
    check_unit_path agentConfig.archive "${archive}"
    check_unit_path agentConfig.quarantine "${quarantine}"
    check_unit_path agentConfig.stateDir "${state}"
    check_unit_path agentConfig.logDir "${logs}"
  fi
  # Before anything changes: no folder install.sh creates or chowns may sit where someone else could
  # swap it for a link.
  check_folder_chain agentConfig.outbox "${outbox}"
  check_folder_chain agentConfig.archive "${archive}"
  check_folder_chain agentConfig.quarantine "${quarantine}"
  check_folder_chain agentConfig.stateDir "${state}"
  check_folder_chain agentConfig.logDir "${logs}"
  check_folder_chain "the program folder" "${PREFIX}"
  check_folder_chain "the configuration folder" "${ETC_DIR}"

  local replaced="" by=""
  if [ "${mode}" = upgrade ]; then
    replaced="$(program_version "${PREFIX}")"
    by="$(program_version "${bundle}")"
    say "upgrading ${replaced} with ${by}; ${CONFIG_FILE} and ${KEY_FILE} are kept as installed"
  fi

  # The account: a system user with its own group, no home, no login shell.
  if ! getent passwd "${ACCOUNT}" >/dev/null; then
    local group_opt=(--user-group)
    if getent group "${ACCOUNT}" >/dev/null; then group_opt=(--gid "${ACCOUNT}"); fi
    useradd --system "${group_opt[@]}" --home-dir /nonexistent --no-create-home --shell "${NOLOGIN}" \
      --comment "plutus-sync order delivery" "${ACCOUNT}"
    change "created system account ${ACCOUNT} (no login shell, no home)"
  else
    say "unchanged: account ${ACCOUNT}"
    if [ "$(getent passwd "${ACCOUNT}" | cut -d: -f7)" != "${NOLOGIN}" ]; then
      usermod --shell "${NOLOGIN}" "${ACCOUNT}"
      change "set the login shell of ${ACCOUNT} to ${NOLOGIN}"
    fi
  fi

  # The program: root-owned, not writable by the account that runs it.
  ensure_dir "${PREFIX}" root root 0755
  for f in "${PROGRAM_FILES[@]}"; do
    local fmode=0755
    if [ "${f}" = SHA256SUMS ]; then fmode=0644; fi
    install_file "${bundle}/${f}" "${PREFIX}/${f}" root root "${fmode}"
  done
  local entry
  for entry in "${PREFIX}"/* "${PREFIX}"/.[!.]*; do
    [ -e "${entry}" ] || [ -L "${entry}" ] || continue
    case " ${PROGRAM_FILES[*]} " in *" $(basename -- "${entry}") "*) continue ;; esac
    rm -rf -- "${entry}"
    change "removed ${entry} (not part of the release)"
  done

  # Configuration and key: the account may read them, never change them.
  ensure_dir "${ETC_DIR}" root "${ACCOUNT}" 0750
  if [ "${mode}" != upgrade ]; then
    install_file "${work}/agent.json" "${CONFIG_FILE}" root "${ACCOUNT}" 0640
    install_file "${work}/id_key" "${KEY_FILE}" "${ACCOUNT}" "${ACCOUNT}" 0600
  fi

  # Folders. The outbox is shared with the web application's group; setgid keeps that group on
  # every file, the default ACL keeps every file readable by the agent.
  ensure_dir "${outbox}" "${ACCOUNT}" "${outbox_group}" 2770
  ensure_outbox_acl "${outbox}"
  grant_waiting_files "${outbox}"
  ensure_dir "${archive}" "${ACCOUNT}" "${ACCOUNT}" 0750
  ensure_dir "${quarantine}" "${ACCOUNT}" "${ACCOUNT}" 0750
  ensure_dir "${state}" "${ACCOUNT}" "${ACCOUNT}" 0700
  ensure_dir "${logs}" "${ACCOUNT}" "${ACCOUNT}" 0750
  adopt_orphans "${outbox}" no
  local d
  for d in "${archive}" "${quarantine}" "${state}" "${logs}"; do adopt_orphans "${d}" yes; done

  # Last: the schedule, once everything it runs is in place.
  cron_file_text >"${work}/cron"
  install_file "${work}/cron" "${CRON_FILE}" root root 0644
  if [ "${agent_mode}" = watch ]; then
    local apart unit_paths=()
    "${node}" -e "${UNIT_PATHS_TOOL}" "${work}" >"${work}/unit-apart" || die "could not work out the watch service's writable folders"
    while IFS= read -r apart; do
      warn "the watch service names ${apart} as separate writable folders: in the service, moving an order between them copies it instead of renaming it, and a symbolic link or other special file stays set aside in the outbox instead of being quarantined; put them under one folder of their own (e.g. /var/lib/plutus) to avoid this"
    done <"${work}/unit-apart"
    mapfile -d '' -t unit_paths <"${work}/unit-paths"
    watch_unit_text "${node}" "${unit_paths[@]}" >"${work}/plutus-sync-watch.service"
    # verify exits 0 on unknown keys too: anything it says is a fault of the unit.
    if command -v systemd-analyze >/dev/null 2>&1; then
      systemd-analyze verify "${work}/plutus-sync-watch.service" >"${work}/verify.out" 2>&1 || true
      [ ! -s "${work}/verify.out" ] || die "the watch service unit does not verify: $(tr '\n' ' ' <"${work}/verify.out")"
    fi
    install_file "${work}/plutus-sync-watch.service" "${UNIT_FILE}" root root 0644
  else
    remove_watch_unit " (cron delivers every 5 minutes)"
  fi

  if [ "${mode}" = upgrade ]; then
    if [ "${replaced}" = "${by}" ]; then
      say "${by} was already installed; nothing to upgrade"
    else
      say "upgraded: replaced ${replaced} with ${by}"
    fi
  fi
  if [ "${changes}" -eq 0 ]; then
    say "no changes: plutus-sync is already installed exactly as specified"
  else
    say "installed: ${changes} change(s)"
  fi

  say "running: plutus-sync check --config ${CONFIG_FILE} (as ${ACCOUNT})"
  local rc=0
  (umask 077 && setpriv --reuid="${ACCOUNT}" --regid="${ACCOUNT}" --init-groups -- \
    env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 "${node}" "${PREFIX}/plutus-sync.cjs" check --config "${CONFIG_FILE}") \
    >"${work}/check.out" 2>&1 || rc=$?
  sed 's/^/install.sh:   /' "${work}/check.out"
  if [ "${rc}" -ne 0 ]; then
    printf 'install.sh: error: installed, but plutus-sync check failed (exit %s); fix the cause above, then run: runuser -u %s -- %s %s/plutus-sync.cjs check --config %s\n' \
      "${rc}" "${ACCOUNT}" "${node}" "${PREFIX}" "${CONFIG_FILE}" >&2
    exit 4
  fi
  say "check passed; cron runs ${PREFIX}/sync_plutus.sh every 5 minutes as ${ACCOUNT}"
  if [ "${agent_mode}" = watch ]; then start_watch_unit; fi
}

# Enables the watch service and (re)starts it: restarted when anything changed in this run (program,
# configuration, unit), so it runs what is installed now.
start_watch_unit() {
  if ! systemd_running; then
    systemctl enable "${WATCH_UNIT}" >/dev/null 2>&1 || true
    printf 'install.sh: error: %s is installed and enabled, but systemd is not running on this host (no /run/systemd/system), so it was not started: it starts at the next boot; cron delivers every 5 minutes meanwhile\n' "${WATCH_UNIT}" >&2
    exit 5
  fi
  systemctl daemon-reload
  systemctl enable "${WATCH_UNIT}" >/dev/null 2>&1 || die "systemctl enable ${WATCH_UNIT} failed"
  if [ "${changes}" -gt 0 ] || ! systemctl is-active --quiet "${WATCH_UNIT}"; then
    if ! systemctl restart "${WATCH_UNIT}"; then
      printf 'install.sh: error: %s did not start; see: journalctl -u %s\n' "${WATCH_UNIT}" "${WATCH_UNIT}" >&2
      exit 5
    fi
    say "started ${WATCH_UNIT} (plutus-sync watch as ${ACCOUNT}); status: systemctl status ${WATCH_UNIT}"
  else
    say "unchanged: ${WATCH_UNIT} is running"
  fi
}

node=""
if [ "${mode}" = uninstall ]; then uninstall; else install; fi
