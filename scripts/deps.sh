#!/usr/bin/env bash
# Installs the Debian packages synod needs, if any are missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libsodium-dev libnng-dev libmsgpack-dev
      libcmocka-dev liblmdb-dev libinih-dev iproute2 openssl ${SYNOD_EXTRA_PKGS:-})
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
