#!/usr/bin/env bash
# Jobs through an rclone remote, then through an rclone FUSE mount (if FUSE is
# available). The remote is rclone's "local" backend, defined by environment
# variables, so nothing is configured on the machine.
# Needs: fspl, rclone (and fuse3 + root for the mount part).
set -euo pipefail
work=$(mktemp -d)
trap 'fusermount3 -u "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
export RCLONE_CONFIG_DEMO_TYPE=local

echo "== 1. a queue on the remote demo:$work/remote-q"
queue=rclone:demo:$work/remote-q
fspl queue-init -q "$queue"
for n in 3 1 2; do   # prepared in order, delivered out of order
  fspl prepare-set-next -s "$work/seq$n" "$n"
  echo "job $n" | fspl prepare -s "$work/seq$n" -i - > "$work/p$n"
done
for n in 3 1 2; do fspl queue-write -q "$queue" < "$work/p$n"; done
fspl queue-ls -q "$queue"
fspl queue-process -q "$queue" cat

if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
  echo "== 2. an append-only sender whose jobs/ is an rclone mount"
  mkdir -p "$work/remote-jobs" "$work/mnt" "$work/outbox"
  rclone mount "demo:$work/remote-jobs" "$work/mnt" --daemon
  ln -s "$work/mnt" "$work/outbox/jobs"
  echo "over the mount" | fspl prepare -s "$work/mseq" -i - | fspl queue-write -q "$work/outbox"
  ls -A "$work/remote-jobs"        # the job and the .fspl-keep placeholder
  fspl queue-init -q "$work/inbox" && rmdir "$work/inbox/jobs"
  ln -s "$work/remote-jobs" "$work/inbox/jobs"
  fspl queue-process -q "$work/inbox" cat
else
  echo "(FUSE not available: skipping the mount part)"
fi
