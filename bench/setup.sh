#!/usr/bin/env bash
# Benchmark set-up (`npm run bench` runs it first): makes sure the programs the side-by-side SSE
# benchmark (bench/sse/) starts are installed, from Debian packages only. Idempotent: when
# everything is present it only checks. No service is enabled or started: the benchmark runs its
# own nginx with a generated configuration in a temporary folder.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt_updated=0

log() { printf 'bench-setup: %s\n' "$*"; }

# apt-get as root, or through sudo when there is one.
apt_get() {
  if [ "$(id -u)" -eq 0 ]; then
    apt-get "$@"
  elif command -v sudo >/dev/null; then
    sudo -n apt-get "$@"
  else
    log "not root and no sudo: install the Debian packages yourself (apt-get install $*)" >&2
    return 1
  fi
}

apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log 'apt-get update'
    apt_get update -qq
    apt_updated=1
  fi
}

# need_file PATH PACKAGE...: installs the PACKAGEs unless PATH exists.
need_file() {
  local path=$1
  shift
  if [ -e "$path" ]; then
    log "$path present"
    return 0
  fi
  log "$path missing: installing Debian package(s) $*"
  apt_update_once
  apt_get install -y -qq --no-install-recommends "$@"
  if [ ! -e "$path" ]; then
    log "package(s) $* did not provide $path" >&2
    return 1
  fi
  log "$path installed"
}

# nchan: nginx with the nchan module (the benchmark loads it with load_module).
need_file /usr/sbin/nginx nginx
need_file /usr/lib/nginx/modules/ngx_nchan_module.so libnginx-mod-nchan

# taskset pins each server and the load generators to a core (util-linux, normally present).
need_file /usr/bin/taskset util-linux

# better-sse is a devDependency: `npm install` (or `npm ci`) puts it in node_modules.
if [ ! -e "$(dirname "$0")/../node_modules/better-sse/package.json" ]; then
  log 'node_modules/better-sse missing: run npm install first' >&2
  exit 1
fi

log "$(/usr/sbin/nginx -v 2>&1), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')"
