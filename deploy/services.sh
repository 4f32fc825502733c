#!/usr/bin/env bash
# Makes sure RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) answer: starts them if
# they are installed but stopped, installs them with apt-get if they are missing. Used by
# the demo, the test command and CI, so a fresh Debian machine needs nothing else.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 120); do
    answers "$port" && return 0
    sleep 1
  done
  echo "services: $name did not come up on port $port" >&2
  return 1
}

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "services: installing $* with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_redis() {
  answers 6379 && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  echo "services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for Redis 6379
}

ensure_rabbitmq() {
  answers 5672 && return 0
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  echo "services: starting RabbitMQ"
  # RabbitMQ 3.10 counts sockets and queue files against its descriptor limit; at Debian's
  # default of 1024 it stops accepting connections once about 2,000 hooks' queues hold
  # deliveries (docs/BENCHMARKS.md, "A backlog in many hooks"). Its production checklist
  # asks for 65,536: raise the limit as far as this machine allows. As root, Debian's
  # wrapper starts the node through su, which resets the limit, so raise it after su.
  local nofile
  nofile=$(ulimit -Hn)
  { [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; } && nofile=65536
  if [ "$(id -u)" -eq 0 ] && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    (cd /var/lib/rabbitmq && su rabbitmq -s /bin/sh -c \
      "ulimit -n $nofile; /usr/lib/rabbitmq/bin/rabbitmq-server -detached") >/dev/null 2>&1 || true
  else
    (ulimit -n "$nofile"; rabbitmq-server -detached) >/dev/null 2>&1 || true
  fi
  wait_for RabbitMQ 5672
}

ensure_tools() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

ensure_redis
ensure_rabbitmq
ensure_tools
echo "services: RabbitMQ and Redis answer"
