#!/usr/bin/env bash
# Named Orthanc instances (DICOMweb plugin loaded, no auth, localhost only) for the integration
# tests; several may run at once, each with its own storage, config and ports.
#
#   scripts/services/orthanc.sh start NAME|stop NAME|status NAME|stop-all|status-all
#
# State lives in .services/orthanc/NAME/ (or $DXAI_SERVICES_DIR/orthanc/NAME): orthanc.json,
# db/, orthanc.log, orthanc.pid, http_port, dicom_port, aet.  Each start begins with empty storage.
# The AE title is NAME in capitals (SOURCE, DEST).  Running instances learn of each other as DICOM
# modalities (named after the instance) at start; every instance also knows the dxai AE
# ($DXAI_AE_TITLE at $DXAI_AE_HOST:$DXAI_AE_PORT, default DXAI at 127.0.0.1:11112).
# Ports: source prefers 8042/4242 and dest 8043/4243, any other free ports otherwise
# (ORTHANC_HTTP_PORT / ORTHANC_DICOM_PORT force them).  ORTHANC_START_TIMEOUT (s, default 60).
set -euo pipefail
SERVICE_NAME=orthanc
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

ROOT_STATE="$SERVICES_DIR/orthanc"
ORTHANC_BIN="${ORTHANC_BIN:-$(command -v Orthanc || echo /usr/sbin/Orthanc)}"
DICOMWEB_PLUGIN="${DICOMWEB_PLUGIN:-/usr/share/orthanc/plugins/libOrthancDicomWeb.so}"

# preferred_port NAME KIND: the port an instance asks for first (the OS picks when it is taken).
preferred_port() {
  case "$1:$2" in
    source:http) echo 8042 ;;
    source:dicom) echo 4242 ;;
    dest:http) echo 8043 ;;
    dest:dicom) echo 4243 ;;
    *) echo "" ;;
  esac
}

check_name() {
  [[ "$1" =~ ^[a-z][a-z0-9_]{0,15}$ ]] || die "instance name must match [a-z][a-z0-9_]{0,15}: '$1'"
}

# write_config NAME DIR HTTP DICOM: the instance's orthanc.json.
write_config() {
  local name="$1" dir="$2" http="$3" dicom="$4" aet
  aet="$(tr '[:lower:]' '[:upper:]' <<<"$name")"
  cat >"$dir/orthanc.json" <<EOF
{
  "Name": "dxai-$name",
  "StorageDirectory": "$dir/db",
  "IndexDirectory": "$dir/db",
  "HttpPort": $http,
  "DicomPort": $dicom,
  "DicomAet": "$aet",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "HttpThreadsCount": 10,
  "DicomThreadsCount": 4,
  "ConcurrentJobs": 2,
  "SaveJobs": false,
  "WebDavEnabled": false,
  "StableAge": 1,
  "OverwriteInstances": true,
  "UnknownSopClassAccepted": true,
  "AcceptedTransferSyntaxes": ["1.2.840.10008.1.*"],
  "DicomCheckCalledAet": false,
  "DicomAlwaysAllowEcho": true,
  "DicomAlwaysAllowStore": true,
  "DicomAlwaysAllowFind": true,
  "DicomAlwaysAllowGet": true,
  "DicomAlwaysAllowMove": true,
  "DicomModalities": {
    "${DXAI_AE_NAME:-dxai}": ["${DXAI_AE_TITLE:-DXAI}", "${DXAI_AE_HOST:-127.0.0.1}", ${DXAI_AE_PORT:-11112}]
  },
  "Plugins": ["$DICOMWEB_PLUGIN"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": true, "Ssl": false }
}
EOF
  echo "$aet" >"$dir/aet"
}

# rest METHOD NAME PATH [BODY]: call an instance's REST API.
rest() {
  local method="$1" name="$2" path="$3" body="${4:-}"
  curl -sf -X "$method" --max-time 10 ${body:+--data "$body"} \
    "http://127.0.0.1:$(cat "$ROOT_STATE/$name/http_port")$path"
}

# link_peers NAME: make NAME and every other running instance known to each other as modalities.
link_peers() {
  local name="$1" peer_dir peer
  for peer_dir in "$ROOT_STATE"/*/; do
    peer="$(basename "$peer_dir")"
    if [[ "$peer" == "$name" ]] || ! is_running "$peer"; then continue; fi
    rest PUT "$name" "/modalities/$peer" "$(modality_json "$peer")" >/dev/null
    rest PUT "$peer" "/modalities/$name" "$(modality_json "$name")" >/dev/null
    log "$name <-> $peer linked as DICOM modalities"
  done
}

modality_json() {
  printf '{"AET": "%s", "Host": "127.0.0.1", "Port": %s}' \
    "$(cat "$ROOT_STATE/$1/aet")" "$(cat "$ROOT_STATE/$1/dicom_port")"
}

is_running() { pid_alive "$ROOT_STATE/$1/orthanc.pid" "$ROOT_STATE/$1/orthanc.json"; }

# wait_ready NAME T0: /system answers and the DICOMweb plugin is loaded, within the deadline.
wait_ready() {
  local name="$1" t0="$2" dir="$ROOT_STATE/$1" deadline
  deadline=$(($(date +%s) + ${ORTHANC_START_TIMEOUT:-60}))
  until rest GET "$name" /system >/dev/null 2>&1; do
    is_running "$name" || { show_tail "$dir/orthanc.log"; die "$name exited during start"; }
    (($(date +%s) < deadline)) || { show_tail "$dir/orthanc.log"; die "$name not ready in time"; }
    sleep 0.1
  done
  rest GET "$name" /plugins | grep -q '"dicom-web"' || {
    show_tail "$dir/orthanc.log"
    die "$name: DICOMweb plugin not loaded ($DICOMWEB_PLUGIN)"
  }
}

cmd_start() {
  local name="$1" dir="$ROOT_STATE/$1" http dicom t0
  if is_running "$name"; then
    log "$name already running: http $(cat "$dir/http_port"), dicom $(cat "$dir/dicom_port")"
    return 0
  fi
  [[ -x "$ORTHANC_BIN" ]] || die "Orthanc not found: run scripts/install_system.sh"
  [[ -f "$DICOMWEB_PLUGIN" ]] || die "DICOMweb plugin missing at $DICOMWEB_PLUGIN"
  rm -rf "$dir" && mkdir -p "$dir/db"
  http="${ORTHANC_HTTP_PORT:-$(free_port "$(preferred_port "$name" http)")}"
  dicom="${ORTHANC_DICOM_PORT:-$(free_port "$(preferred_port "$name" dicom)")}"
  [[ "$http" != "$dicom" ]] || dicom="$(free_port)"
  write_config "$name" "$dir" "$http" "$dicom"
  echo "$http" >"$dir/http_port" && echo "$dicom" >"$dir/dicom_port"
  t0="$(now_s)"
  start_detached "$dir/orthanc.pid" "$dir/orthanc.log" "$ORTHANC_BIN" "$dir/orthanc.json"
  wait_ready "$name" "$t0"
  link_peers "$name"
  elapsed_s "$t0" >"$dir/ready_seconds"
  log "$name ready in $(cat "$dir/ready_seconds")s: http $http, dicom $dicom, aet $(cat "$dir/aet")"
}

cmd_stop() {
  local name="$1" dir="$ROOT_STATE/$1"
  [[ -d "$dir" ]] || { log "$name: nothing to stop"; return 0; }
  stop_pid "$dir/orthanc.pid" "$dir/orthanc.json" "${ORTHANC_STOP_TIMEOUT:-20}"
  log "$name stopped"
}

cmd_status() {
  local name="$1" dir="$ROOT_STATE/$1"
  if is_running "$name"; then
    echo "orthanc $name running pid=$(cat "$dir/orthanc.pid") http=$(cat "$dir/http_port")" \
      "dicom=$(cat "$dir/dicom_port") aet=$(cat "$dir/aet")"
    return 0
  fi
  echo "orthanc $name not running"
  return 3
}

# for_all CMD: run cmd_CMD on every instance that has a state folder.
for_all() {
  local rc=0 dir
  for dir in "$ROOT_STATE"/*/; do
    [[ -d "$dir" ]] || continue
    "cmd_$1" "$(basename "$dir")" || rc=$?
  done
  return "$rc"
}

action="${1:-}"
case "$action" in
  start | stop | status)
    [[ $# -eq 2 ]] || die "usage: $0 $action NAME"
    check_name "$2"
    "cmd_$action" "$2"
    ;;
  stop-all) for_all stop ;;
  status-all) for_all status ;;
  *) echo "usage: $0 start NAME|stop NAME|status NAME|stop-all|status-all" >&2; exit 2 ;;
esac
