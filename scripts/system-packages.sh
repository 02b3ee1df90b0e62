#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing: a fresh machine and CI
# get them from `make test` itself. Each argument is "command:package" (the command that
# must be on PATH, the package that provides it).
#
#   bash scripts/system-packages.sh pgbouncer:pgbouncer
set -euo pipefail

missing=()
for pair in "$@"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${pair%%:*}" ]] || missing+=("${pair#*:}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing packages: ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and run again" >&2
  exit 1
fi
echo "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged service on install; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "${missing[@]}" >/dev/null 2>&1 || true; fi
for package in "${missing[@]}"; do service "$package" stop >/dev/null 2>&1 || true; done
