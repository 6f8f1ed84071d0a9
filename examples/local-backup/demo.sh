#!/usr/bin/env bash
# Incremental backups through a local queue, delivered out of order and
# applied strictly in the sender's order.
#
#   sender:   tar --listed-incremental | fspl prepare  -> packet files
#   transport: packets arrive in the order 3, 1, 2     -> fspl queue-write
#   receiver: fspl queue-process runs tar -x for 1, 2, 3
#
# Usage: examples/local-backup/demo.sh [WORKDIR]   (fspl must be on PATH)
set -euo pipefail

work=${1:-$(mktemp -d)}
mkdir -p "$work"/{source,outbox,restore}
src=$work/source
say() { printf '\n== %s\n' "$*"; }

say "receiver: create the queue"
fspl queue-init -q "$work/queue"

say "sender: three incremental backups"
backup() {
  tar -C "$src" --listed-incremental="$work/snapshot" -cf - . |
    fspl prepare -s "$work/sender.seq" -i - >"$work/outbox/backup-$1.fspl"
}
echo "first version" >"$src/notes.txt"
mkdir -p "$src/photos" && head -c 100000 /dev/urandom >"$src/photos/a.jpg"
backup 1
echo "second version" >"$src/notes.txt"
head -c 50000 /dev/urandom >"$src/photos/b.jpg"
backup 2
rm "$src/photos/a.jpg"                       # a deletion: order matters
echo "third version" >>"$src/notes.txt"
backup 3

say "transport: packets arrive out of order (3, 1, 2)"
for n in 3 1 2; do
  fspl queue-write -q "$work/queue" <"$work/outbox/backup-$n.fspl"
done
fspl queue-ls -q "$work/queue"

say "receiver: apply them in sequence"
fspl queue-process -q "$work/queue" tar -- -C "$work/restore" --listed-incremental=/dev/null -xf -

say "check: the restore equals the source"
diff -r "$src" "$work/restore"
echo "OK: restore matches source; queue now holds $(ls "$work/queue/jobs" | wc -l) job(s)," \
  "next seq $(fspl queue-get-next -q "$work/queue")"
