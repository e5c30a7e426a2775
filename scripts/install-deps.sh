#!/usr/bin/env bash
# Install the Debian packages the tests and the demo need, if missing, without letting
# their system services start (the demo and tests run private instances on loopback).
set -euo pipefail

PACKAGES=(prosody prosody-modules lua-dbi-sqlite3 ejabberd erlang-p1-sqlite3 erlang-p1-oauth2 gnupg)
python3 -c 'import ensurepip, venv' 2>/dev/null || PACKAGES+=(python3-venv)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
else
  SUDO=
fi

echo "install-deps: installing ${missing[*]}"
# Keep the packages' own services from starting (and grabbing 5222/5269/5280 on all
# interfaces): a policy-rc.d that denies every start, removed again afterwards.
guard=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  guard=1
fi
trap '[ -n "$guard" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
