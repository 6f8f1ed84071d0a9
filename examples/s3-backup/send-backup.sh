#!/usr/bin/env bash
# Nightly sender: an incremental tar of SRC, straight into a bucket queue.
#   send-backup.sh SRC s3://BUCKET/PREFIX STATE_DIR
set -euo pipefail
src=$1 queue=$2 state=$3
mkdir -p "$state"
tar -C "$src" --listed-incremental="$state/snapshot" -cf - . |
  fspl prepare -s "$state/fspl.seq" -i - |
  fspl queue-write -q "$queue"
