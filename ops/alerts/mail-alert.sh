#!/bin/sh
# alertCommand for plutus-sync: mails the health event it reads on stdin.
# Configure: "alertCommand": ["/usr/local/lib/plutus-sync/mail-alert.sh", "it-alerts@example.com"]
# Needs a local MTA (sendmail interface, e.g. postfix or nullmailer) and jq.
set -eu
to=${1:?usage: mail-alert.sh RECIPIENT}
sendmail=${PLUTUS_SENDMAIL:-/usr/sbin/sendmail}
event=$(cat)
state=$(printf '%s' "$event" | jq -r '.state')
host=$(printf '%s' "$event" | jq -r '.host')
{
  printf 'To: %s\n' "$to"
  printf 'Subject: plutus-sync %s on %s\n' "$state" "$host"
  printf 'Content-Type: text/plain; charset=utf-8\n\n'
  printf '%s' "$event" | jq -r '.line, "", "Why: " + (.reasons | join("; ")), "", (.problems[] | "- " + .state + ": " + .text)'
} | "$sendmail" -t
