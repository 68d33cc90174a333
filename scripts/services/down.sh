#!/usr/bin/env bash
# Stop every service started by up.sh (Kafka and all Orthanc instances).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rc=0
"$HERE/orthanc.sh" stop-all || rc=$?
"$HERE/kafka.sh" stop || rc=$?
exit "$rc"
