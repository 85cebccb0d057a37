#!/usr/bin/env bash
# Throwaway PostgreSQL for tests, the benchmark and local runs.
#
#   source scripts/pg.sh && pg_start   # exports DATABASE_URL, PG_DIR, PG_PORT
#   pg_stop                            # stops it and removes its directory
#   PG_EXTRA_OPTIONS="-c name=value"   # extra server settings (profiling,
#                                      # e.g. pg_stat_statements)
#   PG_DURABLE=off                     # fsync and synchronous_commit off
#                                      # (default on: the drills run here)
#   scratch_start / scratch_stop       # TMPDIR on tmpfs when there is room
#   disk_report [dir]                  # free space, for the logs
#
# PostgreSQL refuses to run as root, so the server runs as the `postgres` OS
# user, on a free loopback port, in a temporary directory. The OS package is
# installed when no PostgreSQL binaries are found.
set -euo pipefail

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_install() {
  pg_bindir >/dev/null && id postgres >/dev/null 2>&1 && return 0
  echo "pg.sh: installing PostgreSQL from the OS packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
}

# A scratch directory for everything the tests and drills write that is thrown
# away (PostgreSQL data directories, WAL, logs): on /dev/shm when it is a
# tmpfs with at least 4 GiB free (the machine has 24 GiB of memory and the
# disk may be nearly full after a cold build), else under /tmp. Exports
# TMPDIR, which mktemp, Rust's std::env::temp_dir and Python's tempfile use.
#   scratch_start; ...; scratch_stop
scratch_start() {
  local base=/tmp free_kib
  if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
    free_kib=$(df -Pk /dev/shm | awk 'NR==2 {print $4}')
    [ "${free_kib:-0}" -ge $((4 * 1024 * 1024)) ] && base=/dev/shm
  fi
  SCRATCH_DIR=$(mktemp -d "$base/ledger-scratch.XXXXXX")
  # The postgres user must reach the directories chowned to it inside.
  chmod 1777 "$SCRATCH_DIR"
  export SCRATCH_DIR TMPDIR=$SCRATCH_DIR
  echo "pg.sh: scratch directory $SCRATCH_DIR" >&2
}

scratch_stop() {
  [ -n "${SCRATCH_DIR:-}" ] && [ -d "$SCRATCH_DIR" ] || return 0
  rm -rf "$SCRATCH_DIR"
  unset SCRATCH_DIR
}

# Free space where the build and the scratch files go, for the logs.
disk_report() {
  df -h "${1:-.}" "${TMPDIR:-/tmp}" 2>/dev/null | sed 's/^/disk: /' >&2 || true
}

pg_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

pg_start() {
  pg_install
  local bin; bin=$(pg_bindir)
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ledger-pg.XXXXXX")
  chown postgres: "$PG_DIR"
  PG_PORT=$(pg_free_port)
  runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # Many per-test databases and two service instances at once need headroom;
  # WAL bounded (every CREATE DATABASE logs a copy of the template) so that
  # checkpoints recycle it. Durable by default (fsync, synchronous_commit
  # and full_page_writes on), because the drills run on this server and
  # "no acknowledged write lost" means nothing on a database that may drop
  # acknowledged commits; PG_DURABLE=off for a benchmark that documents it.
  local durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  [ "${PG_DURABLE:-on}" = off ] && durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=800 $durability -c shared_buffers=256MB -c max_wal_size=256MB -c min_wal_size=64MB ${PG_EXTRA_OPTIONS:-}" \
    start >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
  export PG_DIR PG_PORT PG_BIN="$bin"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "pg.sh: PostgreSQL listening on 127.0.0.1:$PG_PORT (data in $PG_DIR)" >&2
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ] || return 0
  # PG_BIN is exported only once the server started; a pg_start that
  # failed half-way still leaves PG_DIR to remove.
  runuser -u postgres -- "${PG_BIN:-$(pg_bindir)}/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  unset PG_DIR
}
