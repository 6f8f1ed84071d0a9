#!/usr/bin/env bash
# Receiver: apply every backup that has arrived, in the sender's order,
# straight from the bucket (a lease keeps two receivers from overlapping).
#   receive-backups.sh s3://BUCKET/PREFIX RESTORE_DIR
set -euo pipefail
queue=$1 restore=$2
mkdir -p "$restore"
fspl queue-process -q "$queue" tar -- -C "$restore" --listed-incremental=/dev/null -xf -
