#!/bin/bash
# The official postgres image's contract, for the Debian-built stand-in: on the first start of an
# empty PGDATA, a cluster owned by POSTGRES_USER with POSTGRES_PASSWORD, the database POSTGRES_DB,
# then the scripts in /docker-entrypoint-initdb.d (*.sql, *.sql.gz, *.sh) against it; then the
# server in the foreground as the postgres user, reachable over TCP with a password.
set -Eeuo pipefail

# `docker run IMAGE -c setting=value` means the server with options; anything else is run as given.
if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
shift

if [ "$(id -u)" = 0 ]; then
  # A fresh volume is root's: hand it to postgres, then start again as postgres.
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?the postgres image needs POSTGRES_PASSWORD}"
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  initdb --pgdata="$PGDATA" --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  # Initialisation listens on the socket only: a TCP health check passes once it is over.
  pg_ctl --pgdata="$PGDATA" --wait --options="-c listen_addresses=''" start
  export PGUSER="$user" PGDATABASE="$db"
  if [ "$db" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --dbname=postgres --command="CREATE DATABASE \"$db\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --file="$f" ;;
      *.sql.gz) echo "running $f"; gunzip --stdout "$f" | psql -v ON_ERROR_STOP=1 ;;
    esac
  done
  pg_ctl --pgdata="$PGDATA" --wait --mode=fast stop
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
