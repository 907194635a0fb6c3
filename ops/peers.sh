#!/usr/bin/env bash
# Installs the real peers the tests talk to (Debian packages), when any is missing and we may:
# Orthanc with DICOMweb (the PACS), DCMTK (the other DICOM party), Chromium (browser tests),
# poppler-utils (pdftoppm, to read the printed sheet back), PostgreSQL (the relay's shared
# metadata backend; the tests start their own cluster from its binaries).
set -euo pipefail
missing=0
for tool in /usr/sbin/Orthanc storescu /usr/bin/chromium pdftoppm; do
  command -v "$tool" >/dev/null 2>&1 || missing=1
done
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing=1
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing=1
[ "$missing" = 1 ] || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ops/peers.sh: some test peers are missing; as root run:" >&2
  echo "  apt-get install orthanc orthanc-dicomweb dcmtk chromium poppler-utils postgresql" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  orthanc orthanc-dicomweb dcmtk chromium poppler-utils postgresql >/dev/null
