#!/usr/bin/env bash
# The rehearsal's PostgreSQL entrypoint (komodo-rotate, issue 21): Debian's postgresql-15 run
# with the official postgres image's first-init semantics (docker-library/postgres
# docker-entrypoint.sh, research/ferretdb-auth.md Q4). Written for this project, not copied:
#   - initdb runs only when $PGDATA holds no PG_VERSION; otherwise "Skipping initialization"
#     and POSTGRES_USER/POSTGRES_PASSWORD are ignored (first-init only, like
#     MONGO_INITDB_ROOT_*);
#   - POSTGRES_USER (default postgres) becomes the bootstrap superuser; POSTGRES_PASSWORD (or
#     POSTGRES_PASSWORD_FILE) reaches initdb through --pwfile on a pipe (a bash builtin writes
#     it): never in argv, never in a file;
#   - pg_hba: trust for the local socket and loopback (initdb's defaults, as in the official
#     image), then `host all all all scram-sha-256` for every other host;
#     password_encryption = scram-sha-256, listen_addresses = '*';
#   - POSTGRES_INITDB_ARGS are added to initdb's arguments (word-split, as the official);
#   - POSTGRES_DB other than postgres is created, /docker-entrypoint-initdb.d/*.sh|*.sql run,
#     on a temporary server listening on no TCP address;
#   - the server runs as the postgres user (setpriv), as PID 1 (exec).
set -Eeuo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PATH="/usr/lib/postgresql/15/bin:$PATH"

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# X or X_FILE, not both (as the official file_env).
file_env() {
  local var=$1 def=${2:-} fvar="${1}_FILE"
  if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then
    die "both $var and $fvar are set (but are exclusive)"
  fi
  local val=$def
  if [ -n "${!var:-}" ]; then
    val=${!var}
  elif [ -n "${!fvar:-}" ]; then
    val=$(<"${!fvar}")
  fi
  export "$var"="$val"
  unset "$fvar"
}

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = postgres ]; then
  if [ -s "$PGDATA/PG_VERSION" ]; then
    log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  else
    file_env POSTGRES_USER postgres
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_DB "$POSTGRES_USER"
    if [ -z "$POSTGRES_PASSWORD" ]; then
      die "Database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD)"
    fi
    # printf is a builtin: the password is written to the pipe, never put in an argv.
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
      --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
    unset POSTGRES_PASSWORD
    {
      echo
      echo "# komodo-rotate rehearsal (the official image's settings)"
      echo "listen_addresses = '*'"
      echo "password_encryption = scram-sha-256"
    } >>"$PGDATA/postgresql.conf"
    printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start >/dev/null
    psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ "$POSTGRES_DB" != postgres ]; then
      "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
      case "$f" in
        *.sh) log "running $f"; . "$f" ;;
        *.sql) log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" >/dev/null ;;
        *) if [ -e "$f" ]; then log "ignoring $f"; fi ;;
      esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "PostgreSQL init process complete; ready for start up."
  fi
fi

exec "$@"
