#!/bin/sh
# alertCommand for plutus-sync: posts the health event it reads on stdin, as JSON, to a webhook.
# Configure: "alertCommand": ["/usr/local/lib/plutus-sync/webhook-alert.sh", "https://chat.example.com/hooks/abc"]
# The URL is an argument in the config file (root:plutus 0640), never on a shell command line.
set -eu
url=${1:?usage: webhook-alert.sh URL}
exec /usr/bin/curl --fail --silent --show-error --max-time 20 -H 'Content-Type: application/json' --data-binary @- "$url"
