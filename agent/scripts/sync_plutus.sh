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
#
# Exit status: the agent's own (0 ok, 1 delivery failed, 2 configuration/usage error,
# 3 connect/authentication/host-key failure); 2 when Node.js or the agent cannot be found.
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
if [ -z "${node}" ] || [ ! -x "${node}" ]; then
  echo "sync_plutus.sh: Node.js not found (looked for /usr/bin/node and node on ${PATH}); install Node.js 18 or later, e.g. 'apt-get install nodejs', or re-run /opt/plutus-sync/install.sh" >&2
  exit 2
fi
if [ ! -r "${agent}" ]; then
  echo "sync_plutus.sh: ${agent} not found or not readable; re-run install.sh from the release bundle (or set PLUTUS_HOME)" >&2
  exit 2
fi

# A pass is short-lived and keeps little alive (16 MB of heap at 50,000 files); V8's default
# young generation (up to 3 x 16 MB) only raised its peak memory. Measured with npm run bench:
# 50,000 files peak RSS 150 -> 133 MB, no change in time on 2,000 files.
exec "${node}" --max-semi-space-size=8 "${agent}" run --config "${config}" "$@"
