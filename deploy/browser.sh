#!/usr/bin/env bash
# Makes sure the console's browser test (tests/tests/it/console.rs) can run: Debian's chromium,
# Node with npm, and playwright-core installed in tests/browser from its package-lock.json.
# As root it installs what is missing with apt-get; otherwise it says what to install (the
# test is then skipped, or fails when CI=true). Run by deploy/tools.sh, which deploy/test.sh
# runs, so CI runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "browser: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "browser: the browser test needs ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
    exit 0
  fi
fi
lock=tests/browser/package-lock.json
installed=tests/browser/node_modules/.package-lock.json
if [ ! -f "$installed" ] || [ "$lock" -nt "$installed" ]; then
  echo "browser: npm ci in tests/browser"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
fi
echo "browser: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), node $(node --version), playwright-core ready"
