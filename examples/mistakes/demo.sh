#!/bin/sh
# Common mistakes and the one line each ends in (run: sh examples/mistakes/demo.sh).
# Nothing here needs a server: each mistake is caught before anything is sent.
FSPL=${FSPL:-fspl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

try() {
    echo "\$ fspl $*"
    "$FSPL" "$@" </dev/null
    echo "(exit $?)"
}

try queue-ls -q "$work/no-such-queue"            # a typo: points at queue-init
try queue-ls -q s3:/bucket/q                     # one slash
try queue-ls -q s3://Bad_Bucket/q                # not a bucket name
try queue-ls -q s3://bucket/q -o lease_ttl=-5    # out of range
try queue-ls -q s3://bucket/q -o bogus=1         # unknown option: the known ones are listed
try queue-ls -q 'sftp://me:SECRET@127.0.0.1/q'   # a password in the URL: refused, masked
try queue-ls -q sftp://127.0.0.1:99999/q         # no such port
try queue-ls -q memory://q -o bogus=1            # fsspec options: unknown keys refused too
"$FSPL" queue-init -q "$work/q"
try queue-move "$work/q" "$work/no-such-target"  # a missing target: points at queue-init
