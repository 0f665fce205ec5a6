#!/usr/bin/env bash
# CI: makes sure the system programs the tests run against are installed, from Debian packages
# only (the CI machine reaches the npm registry and the Debian mirrors, nothing else; a browser
# is never downloaded from anywhere else). Idempotent: when everything is present it only checks.
# Later needs (redis-server, nats-server, nginx, haproxy) are one `need_pkg` line each.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt_updated=0

log() { printf 'ci-setup: %s\n' "$*"; }

# Runs `apt-get update` the first time a package has to be installed, and never again.
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log 'apt-get update'
    apt-get update -qq
    apt_updated=1
  fi
}

# need_pkg BINARY PACKAGE: installs PACKAGE unless BINARY (a command name or an absolute path) exists.
need_pkg() {
  local binary=$1 package=$2 found
  if [[ $binary == /* ]]; then
    [ -x "$binary" ] && found=$binary || found=''
  else
    found=$(command -v "$binary" || true)
  fi
  if [ -n "$found" ]; then
    log "$binary present ($found)"
    return 0
  fi
  log "$binary missing: installing Debian package $package"
  apt_update_once
  apt-get install -y -qq --no-install-recommends "$package"
  if [[ $binary == /* ]] && [ ! -x "$binary" ]; then
    log "package $package did not provide $binary" >&2
    return 1
  fi
  if [[ $binary != /* ]] && ! command -v "$binary" >/dev/null; then
    log "package $package did not provide $binary" >&2
    return 1
  fi
  log "$binary installed"
}

# Headless Chromium for test/e2e/browser.test.ts (native EventSource).
need_pkg /usr/bin/chromium chromium

# Redis and NATS (JetStream) servers for the scale-out transports' tests. The tests start their
# own server processes on free loopback ports, so only the binaries are needed here.
# Redis Sentinel is the same binary run as `redis-server CONF --sentinel` (test/helpers/
# redis-sentinel.ts): Debian 12's redis-sentinel package adds only a system service around it
# (/usr/bin/redis-sentinel -> redis-check-rdb, like redis-server), which the tests do not want.
# Redis Cluster nodes are redis-server processes too (test/helpers/redis-cluster.ts).
need_pkg redis-server redis-server
need_pkg /usr/sbin/nats-server nats-server

# nginx and HAProxy for the proxy tests (test/e2e/proxies.test.ts, the doctor's tests). The tests
# start their own proxy processes with generated configs on free ports; no system service is used.
need_pkg /usr/sbin/nginx nginx
need_pkg /usr/sbin/haproxy haproxy

# openssl makes the throw-away certificates of the TLS / HTTP/2 tests.
need_pkg openssl openssl
