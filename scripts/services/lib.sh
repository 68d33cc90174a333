#!/usr/bin/env bash
# Shared helpers for scripts/services/*.sh (sourced, never run).  Defines the repository root, the
# state folder (.services/ or $DXAI_SERVICES_DIR), the jar cache ($DXAI_CACHE) and small functions
# to pick ports, wait with a deadline and stop a process by its pid file.
# shellcheck shell=bash

SERVICES_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVICES_LIB_DIR/../.." && pwd)"
SERVICES_DIR="${DXAI_SERVICES_DIR:-$REPO_ROOT/.services}"
DXAI_CACHE="${DXAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dxai}"
SERVICES_PYTHON="${DXAI_SERVICES_PYTHON:-python3}"
export REPO_ROOT SERVICES_DIR DXAI_CACHE

log() { printf '[%s] %s\n' "${SERVICE_NAME:-services}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# now_s: seconds since the epoch with sub-second precision.
now_s() { date +%s.%N; }

# elapsed_s START: seconds since START (from now_s), two decimals.
elapsed_s() { awk -v s="$1" -v e="$(now_s)" 'BEGIN { printf "%.2f", e - s }'; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port [PREFERRED]: PREFERRED when nothing listens there, else a port the OS hands out.
free_port() {
  local preferred="${1:-}"
  if [[ -n "$preferred" ]] && ! port_open "$preferred"; then
    echo "$preferred"
    return 0
  fi
  "$SERVICES_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# pid_alive PIDFILE PATTERN: true when the pid in PIDFILE runs and its command line has PATTERN
# (guards against a stale pid file whose number the kernel has given to another process).
pid_alive() {
  local pidfile="$1" pattern="$2" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# stop_pid PIDFILE PATTERN GRACE_S: SIGTERM, wait up to GRACE_S seconds, then SIGKILL.
stop_pid() {
  local pidfile="$1" pattern="$2" grace="$3" pid deadline
  if ! pid_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(date +%s) + grace))
  while pid_alive "$pidfile" "$pattern" && (($(date +%s) < deadline)); do
    sleep 0.2
  done
  if pid_alive "$pidfile" "$pattern"; then
    log "pid $pid still running after ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pidfile" "$pattern"; do sleep 0.1; done
  fi
  rm -f "$pidfile"
}

# start_detached PIDFILE LOGFILE CMD...: run CMD in its own session, stdout+stderr to LOGFILE.
start_detached() {
  local pidfile="$1" logfile="$2"
  shift 2
  # A pid file left by a machine that stopped without down.sh names a dead process: without this
  # the wait below ends at once and the caller checks that stale pid ("broker exited").
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  local waited=0
  while [[ ! -s "$pidfile" ]] && ((waited < 50)); do
    sleep 0.1
    waited=$((waited + 1))
  done
}

# show_tail FILE [LINES]: print the last lines of a log file to stderr.
show_tail() {
  local file="$1" lines="${2:-40}"
  if [[ -f "$file" ]]; then
    log "last $lines lines of $file:"
    tail -n "$lines" "$file" >&2
  fi
}
