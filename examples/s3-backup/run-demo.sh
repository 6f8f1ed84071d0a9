#!/usr/bin/env bash
# The whole example against a throwaway S3 server (moto) on 127.0.0.1.
# Needs: fspl with the s3 extra, and moto[s3,server] (pip install 'moto[s3,server]').
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
unset AWS_CA_BUNDLE
for _ in $(seq 50); do python3 -c "import boto3; boto3.client('s3').create_bucket(Bucket='backups')" 2>/dev/null && break; sleep 0.2; done

queue=s3://backups/spool/host1
fspl queue-init -q "$queue"
mkdir -p "$work/src"
for night in 1 2 3; do
  echo "night $night" >>"$work/src/journal.txt"
  head -c 20000 /dev/urandom >"$work/src/data-$night.bin"
  [ "$night" = 3 ] && rm "$work/src/data-1.bin"
  "$here/send-backup.sh" "$work/src" "$queue" "$work/state"
done
fspl queue-ls -q "$queue"
"$here/receive-backups.sh" "$queue" "$work/restore"
diff -r "$work/src" "$work/restore"
echo "OK: the bucket queue restored the source exactly; $(fspl queue-status -q "$queue" | grep '^next')"
