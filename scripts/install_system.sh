#!/usr/bin/env bash
# Install the system packages the integration tests need (Debian/Ubuntu, as root or with sudo):
# Orthanc + DICOMweb plugin, DCMTK, dicom3tools (dciodvfy), a Java 17 runtime and Maven (to fetch
# the Kafka broker's jars), Tesseract's English data (the pixel step's independent verify),
# Chromium and its WebDriver (the review page's browser test drives them headless), Prometheus
# and promtool (the rules check and the dashboard test run a real Prometheus).
# Idempotent: does nothing when every command is already present.
# Debian's orthanc package would start a system-wide Orthanc service; the tests never use it, so
# service starts are refused during the install (policy-rc.d) and the unit is disabled after.
set -euo pipefail

PACKAGES=(orthanc orthanc-dicomweb dcmtk dicom3tools openjdk-17-jre-headless maven fonts-dejavu-core libgl1 libglib2.0-0 tesseract-ocr chromium chromium-driver prometheus)
DICOMWEB_PLUGIN="${DICOMWEB_PLUGIN:-/usr/share/orthanc/plugins/libOrthancDicomWeb.so}"

have_all() {
  local cmd
  for cmd in Orthanc storescu findscu echoscu dciodvfy java mvn curl chromium chromedriver \
    prometheus promtool; do
    command -v "$cmd" >/dev/null || [[ -x "/usr/sbin/$cmd" ]] || return 1
  done
  [[ -f "$DICOMWEB_PLUGIN" ]] && [[ -d /usr/share/fonts/truetype/dejavu ]] \
    && compgen -G "/usr/share/tesseract-ocr/*/tessdata/eng.traineddata" >/dev/null
}

if have_all; then
  echo "install_system: all tools present, nothing to do"
  exit 0
fi

SUDO=()
[[ "$(id -u)" == 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod +x "$policy"
  made_policy=1
fi
cleanup() { if ((made_policy)); then "${SUDO[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" curl ca-certificates
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  "${SUDO[@]}" systemctl disable --now orthanc >/dev/null 2>&1 || true
  "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
have_all || { echo "install_system: tools still missing after install" >&2; exit 1; }
echo "install_system: done"
