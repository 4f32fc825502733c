#!/usr/bin/env bash
# Installs the tools the tests call, so that no test has to skip for want of one:
# - promtool (the deploy tests validate deploy/prometheus with it), taken from Debian's
#   `prometheus` package: only the promtool binary is extracted from it, because installing
#   the package would also start a Prometheus server through its init script;
# - chromium, node and playwright-core for the console's browser test (deploy/browser.sh).
# As root promtool goes to /usr/local/bin; otherwise to target/tools/bin, where the tests
# look too. Without a way to get a tool it says what is missing and goes on: the test then
# skips, or fails when CI=true. Used by deploy/test.sh, so CI runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."

install_promtool() {
  local dest
  if [ "$(id -u)" -eq 0 ]; then dest=/usr/local/bin; else dest=$PWD/target/tools/bin; fi
  if command -v promtool >/dev/null || [ -x "$dest/promtool" ]; then
    return
  fi
  if [ "$(id -u)" -eq 0 ] && ! apt-cache show prometheus >/dev/null 2>&1; then
    apt-get update -qq
  fi
  local work
  work=$(mktemp -d)
  # apt-get download fetches the .deb as it is in Debian, without installing it.
  if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1); then
    rm -rf "$work"
    echo "tools: could not download Debian's prometheus package for promtool" \
      "(as root: apt-get update, then run this again)" >&2
    return
  fi
  mkdir -p "$dest"
  dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
  install -m 0755 "$work/usr/bin/promtool" "$dest/promtool"
  rm -rf "$work"
  echo "tools: installed $("$dest/promtool" --version 2>&1 | head -n 1) in $dest"
}

install_promtool
bash deploy/browser.sh
