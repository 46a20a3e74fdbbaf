#!/usr/bin/env bash
# sync_plutus.sh - cron entry point of plutus-sync: one delivery pass of the web shop's outbox
# to the ERP inbox. Installed as /opt/plutus-sync/sync_plutus.sh by install.sh and run every
# 5 minutes as the `plutus` account from /etc/cron.d/plutus-sync.
#
# Usage: sync_plutus.sh [extra arguments for `plutus-sync run`, e.g. --json]
#
# Environment (all optional; cron sets none of them):
#   PLUTUS_HOME    folder holding plutus-sync.cjs      (default /opt/plutus-sync)
#   PLUTUS_CONFIG  agent configuration file            (default /etc/plutus/agent.json)
#   PLUTUS_NODE    Node.js (>= 18) executable to use   (default /usr/bin/node, else node on PATH)
# Every PLUTUS_* variable (these three and the agent's test hooks) is removed before the pass runs.
#
# A pass whose process is still running passDeadlineSeconds + 30 s after it started (the agent's
# own watchdog fires at + 15 s, but a timer cannot fire while the event loop is busy) is stopped
# from outside: SIGTERM, then SIGKILL 10 s later.
#
# Exit status: the agent's own (0 ok, 1 delivery failed, 2 configuration/usage error,
# 3 connect/authentication/host-key failure); 2 when Node.js or the agent cannot be found;
# 1 when the pass had to be stopped at its hard limit.
set -euo pipefail

# Nothing from the caller's environment may change how the pass runs: cron gives a minimal
# environment, a person running this by hand may not.
PATH=/usr/local/bin:/usr/bin:/bin
export PATH
export LC_ALL=C.UTF-8
unset NODE_OPTIONS NODE_PATH NODE_EXTRA_CA_CERTS LD_PRELOAD LD_LIBRARY_PATH
# Files the agent creates (journal, logs, archive folders) are for its own account only.
umask 077
# No reliance on HOME or the caller's working directory.
cd /

home="${PLUTUS_HOME:-/opt/plutus-sync}"
config="${PLUTUS_CONFIG:-/etc/plutus/agent.json}"
agent="${home}/plutus-sync.cjs"

if [ -n "${PLUTUS_NODE:-}" ]; then
  node="${PLUTUS_NODE}"
elif [ -x /usr/bin/node ]; then
  node=/usr/bin/node
else
  node="$(command -v node || true)"
fi
# The agent reads PLUTUS_* only as test hooks (crash, pause, copies of durable files): a production
# pass gets none of them, whatever this script was started with, and no hook added later either.
while IFS= read -r variable; do unset "${variable}"; done < <(compgen -e PLUTUS_ || true)
if [ -z "${node}" ] || [ ! -x "${node}" ]; then
  echo "sync_plutus.sh: Node.js not found (looked for /usr/bin/node and node on ${PATH}); install Node.js 18 or later, e.g. 'apt-get install nodejs', or re-run /opt/plutus-sync/install.sh" >&2
  exit 2
fi
if [ ! -r "${agent}" ]; then
  echo "sync_plutus.sh: ${agent} not found or not readable; re-run install.sh from the release bundle (or set PLUTUS_HOME)" >&2
  exit 2
fi

# The hard limit follows the configured deadline. The configuration is only read here, as data;
# whatever is wrong with it, the agent itself reports (and the default deadline applies meanwhile).
readonly DEFAULT_DEADLINE=240 MARGIN=30 KILL_AFTER=10
deadline="$("${node}" -e '
  try {
    const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").replace(/^\uFEFF/, ""));
    if (Number.isInteger(c.passDeadlineSeconds)) process.stdout.write(String(c.passDeadlineSeconds));
  } catch {}' "${config}" 2>/dev/null || true)"
if ! [[ "${deadline}" =~ ^[0-9]{1,4}$ ]] || [ "${deadline}" -lt 5 ] || [ "${deadline}" -gt 3600 ]; then
  deadline="${DEFAULT_DEADLINE}"
fi
limit=$((deadline + MARGIN))

# A pass is short-lived and keeps little alive (16 MB of heap at 50,000 files); V8's default
# young generation (up to 3 x 16 MB) only raised its peak memory. Measured with npm run bench:
# 50,000 files peak RSS 150 -> 133 MB, no change in time on 2,000 files.
# (The agent's stderr goes to fd 3, the real stderr; bash's own "Killed" notice goes nowhere.)
rc=0
{ timeout --kill-after="${KILL_AFTER}" "${limit}" "${node}" --max-semi-space-size=8 "${agent}" run --config "${config}" "$@" 2>&3 3>&-; } 3>&2 2>/dev/null || rc=$?
# timeout: 124 when SIGTERM ended the pass at the limit, 137 when SIGKILL had to (only then is 137
# ours and not, e.g., the OOM killer's: the pass then ran past the limit).
if [ "${rc}" -eq 124 ] || { [ "${rc}" -eq 137 ] && [ "${SECONDS}" -ge "${limit}" ]; }; then
  echo "sync_plutus.sh: the pass was still running ${limit} s after it started (passDeadlineSeconds ${deadline} + ${MARGIN} s) and was stopped; the next pass goes on from there (its journal settles whatever this one left in doubt)" >&2
  exit 1
fi
exit "${rc}"
