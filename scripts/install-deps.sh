#!/usr/bin/env bash
# Install the Debian packages the tests and the demo need, if missing, without letting
# their system services start (the demo and tests run private instances on loopback).
#
# When another apt or dpkg run holds the package lock (unattended-upgrades after boot,
# often), wait for it instead of failing: up to APT_LOCK_WAIT seconds (default 600).
set -euo pipefail

# chromium renders the compliance report's HTML page in a test (I.11); slapd and
# ldap-utils are the real LDAP server the directory sync is tested against (IV.2);
# profanity under tmux is the third-party OMEMO client of tests/clients (II.4).
PACKAGES=(prosody prosody-modules lua-dbi-sqlite3 ejabberd erlang-p1-sqlite3 erlang-p1-oauth2 gnupg
  chromium slapd ldap-utils profanity tmux)
APT_LOCKS=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
APT_LOCK_WAIT=${APT_LOCK_WAIT:-600}

# The pid holding one of apt's locks, or nothing. Reads /proc/locks (fcntl locks, by
# inode) instead of trying the locks, so the other run is never disturbed.
apt_lock_holder() {
  local lock inode
  for lock in "${APT_LOCKS[@]}"; do
    [ -e "$lock" ] || continue
    inode=$(stat -c %i "$lock")
    awk -v inode="$inode" '{
      for (i = 2; i <= NF; i++) {
        n = split($i, part, ":")
        if (n == 3 && part[3] == inode && $(i - 1) ~ /^[0-9]+$/) { print $(i - 1); exit }
      }
    }' /proc/locks | grep . && return 0
  done
  return 0
}

wait_for_apt_lock() {
  local holder waited=0
  holder=$(apt_lock_holder | head -n1)
  [ -z "$holder" ] && return 0
  echo "install-deps: another package manager run holds the apt/dpkg lock" \
    "(pid $holder: $(cat /proc/"$holder"/comm 2>/dev/null || echo '?'), often unattended-upgrades);" \
    "waiting up to $APT_LOCK_WAIT s for it to finish" >&2
  while [ -n "$holder" ]; do
    if [ "$waited" -ge "$APT_LOCK_WAIT" ]; then
      echo "install-deps: the apt/dpkg lock is still held by pid $holder after $APT_LOCK_WAIT s;" \
        "let that run finish (or set APT_LOCK_WAIT) and try again" >&2
      return 1
    fi
    sleep 2
    waited=$((waited + 2))
    holder=$(apt_lock_holder | head -n1)
  done
  echo "install-deps: the lock is free after ${waited} s; continuing" >&2
}

main() {
  python3 -c 'import ensurepip, venv' 2>/dev/null || PACKAGES+=(python3-venv)

  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
    command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  else
    SUDO=
  fi

  echo "install-deps: installing ${missing[*]}"
  wait_for_apt_lock
  # Keep the packages' own services from starting (and grabbing 5222/5269/5280 on all
  # interfaces): a policy-rc.d that denies every start, removed again afterwards.
  guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  trap '[ -n "$guard" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  # The lock can be taken again between the wait and apt-get: apt-get waits as well.
  local apt=(-o "DPkg::Lock::Timeout=$APT_LOCK_WAIT")
  $SUDO apt-get "${apt[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"
}

# Sourcing the file (tests) defines the functions without installing anything.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
