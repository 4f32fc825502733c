#!/usr/bin/env bash
# The test command: makes sure RabbitMQ and Redis answer, then runs every test of the
# workspace against them (each test uses a HOOKBUS_PREFIX of its own and cleans up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/services.sh
cargo test --workspace --locked "$@"
