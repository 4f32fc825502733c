#!/usr/bin/env bash
# The house rules, checked by machine (CI runs this before the tests; run it before you push):
# formatting, clippy with warnings denied, the crate boundaries, and no unused dependency.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p hookbus-producer --no-default-features --locked -- -D warnings

# `crate` must not depend (normal dependencies) on any crate matching `pattern`.
refuse() {
  local crate=$1 pattern=$2 found
  shift 2
  found=$(cargo tree -p "$crate" "$@" -e normal --prefix none --locked | sed 's/ v.*//' | sort -u |
    grep -Ex "$pattern" || true)
  if [ -n "$found" ]; then
    echo "lint: $crate $* depends on $(echo "$found" | paste -sd, -), which its role forbids" >&2
    exit 1
  fi
}
# The contracts are pure: no async runtime, broker, Redis or HTTP stack.
refuse hookbus-contracts 'tokio|lapin|redis|deadpool-redis|axum|hyper|reqwest|prometheus|clap'
# The SDK an auth service embeds: no server stack.
refuse hookbus-producer 'axum|hyper|redis|deadpool-redis|prometheus|clap|reqwest|tracing-subscriber' --no-default-features
# No service depends on another service.
for service in hookbus-producer hookbus-router hookbus-deliverer; do
  refuse "$service" "$(echo 'hookbus-producer|hookbus-router|hookbus-deliverer' | sed "s/$service|\?//; s/|$//")"
done

# No dependency declared and unused.
if ! command -v cargo-machete >/dev/null; then
  cargo install cargo-machete --locked --version 0.9.2
fi
cargo machete
echo "lint: fmt, clippy, crate boundaries and dependencies are clean"
