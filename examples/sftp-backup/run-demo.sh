#!/usr/bin/env bash
# Incremental backups delivered to a "backup server" over SFTP and applied
# there in order. The server is a throwaway OpenSSH sshd on 127.0.0.1 with
# its own keys; nothing in ~/.ssh is touched.
# Needs: fspl with the sftp extra, openssh-server (/usr/sbin/sshd), tar.
set -euo pipefail
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N "" -f "$work/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$work/client_key"
cp "$work/client_key.pub" "$work/authorized_keys"
cat >"$work/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
Subsystem sftp internal-sftp
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd=$!
trap 'kill $sshd; rm -rf "$work"' EXIT
echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$work/host_key.pub")" >"$work/known_hosts"
cat >"$work/ssh_config" <<CFG
Host backupsrv
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  IdentityFile $work/client_key
  UserKnownHostsFile $work/known_hosts
CFG
export FSPL_SSH_CONFIG=$work/ssh_config
sleep 0.5

server_dir=$work/server/laptop      # what the backup server sees on its disk
mkdir -p "$work/server"
queue=sftp://backupsrv$server_dir
fspl queue-init -q "$queue"

mkdir -p "$work/laptop"
for day in 1 2 3; do
  echo "day $day notes" >>"$work/laptop/notes.txt"
  head -c 30000 /dev/urandom >"$work/laptop/photo-$day.jpg"
  [ "$day" = 3 ] && rm "$work/laptop/photo-2.jpg"
  tar -C "$work/laptop" --listed-incremental="$work/snapshot" -cf - . |
    fspl prepare -s "$work/laptop.seq" -i - |
    fspl queue-write -q "$queue"
done
fspl queue-ls -q "$queue"

# On the backup server: apply them in order (here with the server-side fspl,
# exactly what a cron job there would run).
mkdir -p "$work/server/restore"
fspl queue-process -q "$server_dir" tar -- -C "$work/server/restore" --listed-incremental=/dev/null -xf -
diff -r "$work/laptop" "$work/server/restore"
echo "OK: three incremental backups delivered over SFTP and applied in order"
