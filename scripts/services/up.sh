#!/usr/bin/env bash
# Start every service the integration tests use (Kafka, Orthanc "source" and "dest") and check the
# DICOM command-line tools; prints how long each service took to become ready, in seconds, and
# writes the same figures as JSON to .services/ready.json.  Idempotent: running services are kept.
set -euo pipefail
SERVICE_NAME=up
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
HERE="$REPO_ROOT/scripts/services"

missing=()
for tool in storescu findscu echoscu dciodvfy; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/install_system.sh)"

declare -A SECS=()
# timed NAME CMD...: run CMD and record in SECS[NAME] the seconds it took.
timed() {
  local name="$1" t0
  shift
  t0="$(now_s)"
  "$@" >/dev/null
  SECS[$name]="$(elapsed_s "$t0")"
  log "$name ready after ${SECS[$name]}s"
}

mkdir -p "$SERVICES_DIR"
timed kafka "$HERE/kafka.sh" start
timed orthanc_source "$HERE/orthanc.sh" start source
timed orthanc_dest "$HERE/orthanc.sh" start dest
# *_s: wall time of each start command (Kafka's includes the jar download and storage format);
# kafka_broker_ready_s: from the broker JVM's launch to a served metadata request.
printf '{"kafka_s": %s, "kafka_broker_ready_s": %s, "orthanc_source_s": %s, "orthanc_dest_s": %s}\n' \
  "${SECS[kafka]}" "$(cat "$SERVICES_DIR/kafka/ready_seconds")" \
  "${SECS[orthanc_source]}" "${SECS[orthanc_dest]}" | tee "$SERVICES_DIR/ready.json"
"$HERE/kafka.sh" status
"$HERE/orthanc.sh" status source
"$HERE/orthanc.sh" status dest
