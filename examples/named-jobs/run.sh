#!/bin/sh
# Jobs named after their header: queue-write names each parsable packet
# fspl-SEQ_SECS_NANOS_RANDOM_CHECK.fspl, so queue-ls answers from the names
# alone; a packet that does not parse keeps an fspl-UUID.fspl name.
# Usage: run.sh WORKDIR   (FSPL: the fspl to run, default "fspl")
set -eu
FSPL=${FSPL:-fspl}
work=$1
queue=$work/queue
$FSPL queue-init -q "$queue"
for n in 1 2 3; do
    echo "payload $n" | $FSPL prepare -s "$work/seq" -i - -- "job$n" | $FSPL queue-write -q "$queue"
done
echo "not a packet" | $FSPL queue-write -q "$queue"
echo "== files"
ls "$queue/jobs"
echo "== queue-ls (seq and time read from the names)"
$FSPL queue-ls -q "$queue"
echo "== processing"
$FSPL queue-process -q "$queue" --allow-job-params sh -- -c 'echo "ran $FSPL_JOB_FILENAME with $1: $(cat)"' sh
