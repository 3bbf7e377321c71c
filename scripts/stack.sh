#!/usr/bin/env bash
# The Trading Ecosystem on containers (deploy/docker-compose.yml), one command each:
#
#   scripts/stack.sh up      build what is missing, start everything, wait until every
#                            service is healthy (bounded; names the one that is not, with its
#                            last logs)                                        make stack-up
#   scripts/stack.sh run [SCENARIO] [RUN OPTIONS]
#                            run a scenario with `test-coordinator run` inside the coordinator's
#                            container, against the stack's containers (through the engine's
#                            socket); the report lands in STACK_REPORTS_DIR on the host.
#                            Default: deploy/scenarios/exchange-restart-during-trading.yaml
#                            (the flagship). SCENARIO: a file under deploy/scenarios/ (mounted at
#                            /app/stack-scenarios) or a path inside the container (/app/...);
#                            RUN OPTIONS go to `test-coordinator run` (--var NAME=VALUE, --seed N).
#                            Exit code: the run's (0 passed, 1 failed, 3 infrastructure). make stack-run
#   scripts/stack.sh down    remove the stack's containers, network and volumes, and check that
#                            none is left (reports and images stay)          make stack-down
#   scripts/stack.sh status  each service's state and health
#   scripts/stack.sh logs [SERVICE]   the last lines of the services' logs
#
# The engine: DOCKER_HOST if it answers; else Docker's socket; else Podman's
# (/run/podman/podman.sock), started by scripts/docker-engine.sh if needed (Debian, root).
# Compose: `docker compose`, else docker-compose, else podman-compose; with none, Debian's
# docker-compose (v1) is installed (root and apt). STACK_COMPOSE="..." picks one.
#
# Images (nothing is pulled on the local Podman engine, which has no registry here):
#   TC_IMAGE            the project's image, for the coordinator and the sample services
#                       (trading-ecosystem/test-coordinator:dev); built when missing, when
#                       built from other sources than the checkout's (its source label),
#                       or always with STACK_BUILD=1 (scripts/base-image.sh first makes
#                       python:3.11-slim from Debian's packages when it is missing on Podman)
#   POSTGRES_IMAGE, REDIS_IMAGE, PROMETHEUS_IMAGE   the official images when present, or
#                       on an engine other than the local Podman (compose pulls them); else the
#                       stand-ins built from deploy/images/ (Debian packages).
#                       STACK_STANDINS=auto|always|never (default auto); a variable that is set
#                       is used as it is.
#   GRAFANA_IMAGE       only with STACK_GRAFANA=1 (the "grafana" profile); no stand-in.
#
# Other variables (defaults): COMPOSE_PROJECT_NAME (trading-ecosystem),
# SERVICE_INSTANCE_NAME (test-coordinator: the coordinator's container),
# TC_HTTP_HOST_PORT (8087), TC_GRPC_HOST_PORT (50055), PROMETHEUS_HOST_PORT (9090),
# GRAFANA_HOST_PORT (3000), STACK_DB_PORTS=1 publishes PostgreSQL and Redis on
# POSTGRES_HOST_PORT (15432) and REDIS_HOST_PORT (16380),
# STACK_REPORTS_DIR (reports/stack), ORDER_RATE_PER_S (20), ORDER_RETRY (true),
# AUDIT_DROP_EVENTS (false), LOG_LEVEL (INFO).
# Deadlines, in seconds: STACK_UP_TIMEOUT (180, from `up` to every service healthy),
# STACK_BUILD_TIMEOUT (900, per image build), STACK_RUN_TIMEOUT (300),
# STACK_DOWN_TIMEOUT (90).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$ROOT/deploy
PODMAN_HOST=unix:///run/podman/podman.sock
DOCKER_DEFAULT_HOST=unix:///var/run/docker.sock
PROJECT=${COMPOSE_PROJECT_NAME:-trading-ecosystem}
NETWORK=trading-ecosystem
COORD=${SERVICE_INSTANCE_NAME:-test-coordinator}
ENGINE_CONTAINER=trading-system-engine
CONTAINER_UID=10001
UP_TIMEOUT=${STACK_UP_TIMEOUT:-180}
BUILD_TIMEOUT=${STACK_BUILD_TIMEOUT:-900}
RUN_TIMEOUT=${STACK_RUN_TIMEOUT:-300}
DOWN_TIMEOUT=${STACK_DOWN_TIMEOUT:-90}
LOG_LINES=${STACK_LOG_LINES:-30}
DEFAULT_SCENARIO=$DEPLOY/scenarios/exchange-restart-during-trading.yaml
SCENARIOS_IN_CONTAINER=/app/stack-scenarios
REPORTS_IN_CONTAINER=/app/reports

DEFAULT_TC_IMAGE=trading-ecosystem/test-coordinator:dev
export TC_IMAGE=${TC_IMAGE:-$DEFAULT_TC_IMAGE}
export TC_HTTP_HOST_PORT=${TC_HTTP_HOST_PORT:-8087}
export TC_GRPC_HOST_PORT=${TC_GRPC_HOST_PORT:-50055}
export PROMETHEUS_HOST_PORT=${PROMETHEUS_HOST_PORT:-9090}
export GRAFANA_HOST_PORT=${GRAFANA_HOST_PORT:-3000}
export POSTGRES_HOST_PORT=${POSTGRES_HOST_PORT:-15432}
export REDIS_HOST_PORT=${REDIS_HOST_PORT:-16380}
STACK_REPORTS_DIR=$(realpath -m "${STACK_REPORTS_DIR:-$ROOT/reports/stack}")
export STACK_REPORTS_DIR
# The coordinator listens on the stack's network, so its runs API needs a bearer token:
# TC_API_TOKEN, else one made on first use and kept (mode 600) in STACK_TOKEN_FILE.
STACK_TOKEN_FILE=${STACK_TOKEN_FILE:-$ROOT/.stack-api-token}
if [ -z "${TC_API_TOKEN:-}" ]; then
  if [ ! -s "$STACK_TOKEN_FILE" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$STACK_TOKEN_FILE")
  fi
  TC_API_TOKEN=$(cat "$STACK_TOKEN_FILE")
fi
export TC_API_TOKEN
export BUILDAH_FORMAT=docker   # podman-compose / buildah keep HEALTHCHECK with it

T0=$SECONDS
log() { echo "stack.sh: $*" >&2; }
die() { log "$*"; exit "${EXIT_CODE:-1}"; }
elapsed() { echo "$((SECONDS - T0)) s"; }

# -- the engine and its clients ------------------------------------------------

ping_engine() {   # $1: a Docker host URL; true when it answers /_ping
  local h=$1 out=""
  case "$h" in
    unix://*) [ -S "${h#unix://}" ] && out=$(curl -s -m 5 --unix-socket "${h#unix://}" http://d/_ping 2>/dev/null) ;;
    tcp://*) out=$(curl -s -m 5 "http://${h#tcp://}/_ping" 2>/dev/null) ;;
  esac
  [ "$out" = OK ]
}

use_engine() {
  command -v curl >/dev/null 2>&1 || die "curl is needed (apt-get install curl)"
  if [ -n "${DOCKER_HOST:-}" ] && ping_engine "$DOCKER_HOST"; then
    :
  elif [ -z "${DOCKER_HOST:-}" ] && ping_engine "$DOCKER_DEFAULT_HOST"; then
    export DOCKER_HOST=$DOCKER_DEFAULT_HOST
  elif [ -z "${DOCKER_HOST:-}" ] || [ "$DOCKER_HOST" = "$PODMAN_HOST" ]; then
    local env
    env=$("$ROOT/scripts/docker-engine.sh" --print-env) || die "no engine: scripts/docker-engine.sh could not start Podman"
    eval "$env"
  else
    die "DOCKER_HOST=$DOCKER_HOST does not answer"
  fi
  case "$DOCKER_HOST" in
    unix://*) ;;
    *) die "DOCKER_HOST=$DOCKER_HOST: the coordinator's container needs the engine's unix socket to mount" ;;
  esac
  if command -v docker >/dev/null 2>&1; then
    DK=(docker)
  elif [ "$DOCKER_HOST" = "$PODMAN_HOST" ] && command -v podman >/dev/null 2>&1; then
    DK=(podman)
  else
    die "neither the docker CLI nor podman is installed"
  fi
}

# The local rootful Podman engine: no registry assumed, images built with podman build.
local_podman() { [ "$DOCKER_HOST" = "$PODMAN_HOST" ] && command -v podman >/dev/null 2>&1; }

dk() { "${DK[@]}" "$@"; }

image_exists() { dk image inspect "$1" >/dev/null 2>&1; }

pick_compose() {
  if [ -n "${STACK_COMPOSE:-}" ]; then
    read -r -a COMPOSE <<<"$STACK_COMPOSE"
  elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  elif command -v podman-compose >/dev/null 2>&1 && local_podman; then
    COMPOSE=(podman-compose)
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "no compose found: installing Debian's docker-compose (log: /tmp/stack-compose-apt.log)"
    { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends docker-compose \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; }
    } >/tmp/stack-compose-apt.log 2>&1 || die "apt-get install docker-compose failed (see /tmp/stack-compose-apt.log)"
    COMPOSE=(docker-compose)
  else
    die "no compose: install the docker compose plugin, docker-compose or podman-compose"
  fi
  COMPOSE_ARGS=(-p "$PROJECT" -f "$DEPLOY/docker-compose.yml")
  if [ "${COMPOSE[0]}" = docker-compose ] && local_podman; then
    COMPOSE_ARGS+=(-f "$DEPLOY/docker-compose.podman.yml")   # a repeatable `up` (see the file)
  fi
  if [ "${STACK_DB_PORTS:-0}" = 1 ]; then
    COMPOSE_ARGS+=(-f "$DEPLOY/docker-compose.db-ports.yml")
  fi
  if [ "${STACK_GRAFANA:-0}" = 1 ]; then
    COMPOSE_ARGS+=(--profile grafana)
  fi
}

compose() { "${COMPOSE[@]}" "${COMPOSE_ARGS[@]}" "$@"; }

# -- images --------------------------------------------------------------------

build() {   # tag context [build args...]
  local tag=$1 ctx=$2 t=$SECONDS
  shift 2
  log "building $tag from ${ctx#"$ROOT"/}"
  local out=/tmp/stack-build-${tag//[^a-zA-Z0-9]/_}.log
  if local_podman; then
    timeout "$BUILD_TIMEOUT" podman build -q --pull=never --format docker "$@" -t "$tag" "$ctx" >"$out" 2>&1 \
      || { tail -n 20 "$out" >&2; die "building $tag failed or took more than $BUILD_TIMEOUT s (log: $out)"; }
  else
    timeout "$BUILD_TIMEOUT" "${DK[@]}" build -q "$@" -t "$tag" "$ctx" >"$out" 2>&1 \
      || { tail -n 20 "$out" >&2; die "building $tag failed or took more than $BUILD_TIMEOUT s (log: $out)"; }
  fi
  log "built $tag in $((SECONDS - t)) s"
}

base_image() {   # python:3.11-slim from Debian's packages, on the local Podman, when missing
  if local_podman && ! image_exists python:3.11-slim; then
    log "python:3.11-slim is missing and cannot be pulled here: scripts/base-image.sh makes it"
    timeout "$BUILD_TIMEOUT" "$ROOT/scripts/base-image.sh" || die "scripts/base-image.sh failed"
  fi
}

# Why the project's image must be built: missing, asked for, or built from other sources
# (its test-coordinator.source label; an image without it is rebuilt only under the default
# tag, since a TC_IMAGE of the user's own is theirs). Empty: it is current.
project_image_stale() {
  [ "${STACK_BUILD:-0}" = 1 ] && { echo "STACK_BUILD=1"; return; }
  image_exists "$TC_IMAGE" || { echo "it is missing"; return; }
  local built wanted
  built=$(dk image inspect -f '{{ index .Config.Labels "test-coordinator.source" }}' "$TC_IMAGE" 2>/dev/null || true)
  [ "$built" = "<no value>" ] && built=""
  wanted=$("$ROOT/scripts/build-image.sh" --fingerprint)
  if [ -n "$built" ] && [ "$built" != "$wanted" ]; then
    echo "it was built from other sources (${built}; these are ${wanted})"
  elif [ -z "$built" ] && [ "$TC_IMAGE" = "$DEFAULT_TC_IMAGE" ]; then
    echo "it carries no source fingerprint (built before they were labelled)"
  fi
}

project_image() {
  local why
  why=$(project_image_stale)
  if [ -n "$why" ]; then
    log "building $TC_IMAGE: $why"
    base_image
    local t=$SECONDS
    if local_podman; then
      timeout "$BUILD_TIMEOUT" "$ROOT/scripts/build-image.sh" "$TC_IMAGE" >/dev/null 2>/tmp/stack-build-image.log \
        || { tail -20 /tmp/stack-build-image.log >&2; die "building $TC_IMAGE failed or took more than $BUILD_TIMEOUT s"; }
    else
      timeout "$BUILD_TIMEOUT" "${DK[@]}" build -q --label "test-coordinator.source=$("$ROOT/scripts/build-image.sh" --fingerprint)" \
        -t "$TC_IMAGE" "$ROOT" >/tmp/stack-build-image.log 2>&1 \
        || { tail -20 /tmp/stack-build-image.log >&2; die "building $TC_IMAGE failed or took more than $BUILD_TIMEOUT s"; }
    fi
    log "built $TC_IMAGE in $((SECONDS - t)) s"
  fi
}

standin_base() {
  if [ -n "${STACK_STANDIN_BASE:-}" ]; then
    echo "$STACK_STANDIN_BASE"
  elif local_podman; then
    base_image >&2
    if image_exists localhost/tc-python:bookworm; then echo localhost/tc-python:bookworm; else echo python:3.11-slim; fi
  else
    echo debian:bookworm-slim
  fi
}

# Point $1 (POSTGRES_IMAGE ...) at the official image $2 or at the stand-in $3 built from $4.
service_image() {
  local var=$1 official=$2 standin=$3 dir=$4 mode=${STACK_STANDINS:-auto}
  if [ -n "${!var:-}" ]; then   # chosen by the user: used as it is
    if local_podman && ! image_exists "${!var}"; then
      die "$var=${!var} is not present locally, and nothing is pulled on this engine"
    fi
    return 0
  fi
  case "$mode" in
    never) export "$var=$official"; return 0 ;;
    auto) if image_exists "$official" || ! local_podman; then export "$var=$official"; return 0; fi ;;
    always) ;;
    *) die "STACK_STANDINS=$mode: allowed auto, always, never" ;;
  esac
  if [ "${STACK_BUILD:-0}" = 1 ] || ! image_exists "$standin"; then
    build "$standin" "$DEPLOY/images/$dir" --build-arg "BASE_IMAGE=$(standin_base)"
  fi
  export "$var=$standin"
}

images() {
  project_image
  service_image POSTGRES_IMAGE postgres:15-alpine trading-ecosystem/postgres-standin:15 postgres
  service_image REDIS_IMAGE redis:7-alpine trading-ecosystem/redis-standin:7 redis
  service_image PROMETHEUS_IMAGE prom/prometheus:v2.53.0 trading-ecosystem/prometheus-standin:2 prometheus
  if [ "${STACK_GRAFANA:-0}" = 1 ]; then
    export GRAFANA_IMAGE=${GRAFANA_IMAGE:-grafana/grafana:11.1.0}
    if local_podman && ! image_exists "$GRAFANA_IMAGE"; then
      die "STACK_GRAFANA=1: $GRAFANA_IMAGE is not present and there is no registry here (no stand-in: Debian has no Grafana); load it (podman load) or set GRAFANA_IMAGE"
    fi
  fi
  log "images: coordinator and samples $TC_IMAGE, postgres $POSTGRES_IMAGE, redis $REDIS_IMAGE, prometheus $PROMETHEUS_IMAGE${GRAFANA_IMAGE:+, grafana $GRAFANA_IMAGE}"
}

# -- host folders, the socket, ports ----------------------------------------------

prepare_host() {
  mkdir -p "$STACK_REPORTS_DIR"
  if [ "$(id -u)" = 0 ]; then
    chown "$CONTAINER_UID:$CONTAINER_UID" "$STACK_REPORTS_DIR"
  elif [ "$(stat -c %u "$STACK_REPORTS_DIR")" != "$CONTAINER_UID" ]; then
    chmod 0777 "$STACK_REPORTS_DIR"   # not root: let uid 10001 write there
  fi
  export DOCKER_SOCKET=${DOCKER_HOST#unix://}
  DOCKER_SOCKET=$(realpath "$DOCKER_SOCKET")
  export DOCKER_SOCKET_GID
  DOCKER_SOCKET_GID=$(stat -c %g "$DOCKER_SOCKET")
  local mode
  mode=$(stat -c %a "$DOCKER_SOCKET")
  if [ $((0$mode & 060)) != $((060)) ]; then
    if local_podman && [ "$(id -u)" = 0 ]; then
      # Podman makes its socket 0600; Docker's is 0660 for the docker group. The coordinator
      # (uid 10001) joins the socket's group in its container (group_add).
      log "giving $DOCKER_SOCKET's group (gid $DOCKER_SOCKET_GID) read-write access, as Docker does, for the coordinator's container"
      chmod g+rw "$DOCKER_SOCKET"
    else
      log "warning: $DOCKER_SOCKET (mode $mode) is not group read-write: the coordinator's runs cannot use the engine"
    fi
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_ports() {
  # Only before a first start: a running stack holds its own ports.
  if dk container inspect "$COORD" >/dev/null 2>&1; then return 0; fi
  local pairs=("TC_HTTP_HOST_PORT=$TC_HTTP_HOST_PORT" "TC_GRPC_HOST_PORT=$TC_GRPC_HOST_PORT"
    "PROMETHEUS_HOST_PORT=$PROMETHEUS_HOST_PORT") p busy=()
  [ "${STACK_GRAFANA:-0}" = 1 ] && pairs+=("GRAFANA_HOST_PORT=$GRAFANA_HOST_PORT")
  [ "${STACK_DB_PORTS:-0}" = 1 ] && pairs+=("POSTGRES_HOST_PORT=$POSTGRES_HOST_PORT" "REDIS_HOST_PORT=$REDIS_HOST_PORT")
  for p in "${pairs[@]}"; do
    port_busy "${p#*=}" && busy+=("$p")
  done
  [ ${#busy[@]} -eq 0 ] || die "host port(s) already in use: ${busy[*]}; choose others (e.g. ${busy[0]%%=*}=...)"
}

# -- state of the stack ----------------------------------------------------------------

# "service id name" for every container of the project (any state).
project_containers() {
  dk ps -a --filter "label=com.docker.compose.project=$PROJECT" \
    --format '{{.Label "com.docker.compose.service"}} {{.ID}} {{.Names}}'
}

# "name state health" of each container id given (health: none without a health check).
states() {
  dk inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$@" \
    | sed 's#^/##'
}

explain() {   # $1 container: what is wrong, its last health check and logs
  local c=$1
  log "---- $c: $(dk inspect -f 'state {{.State.Status}}, exit code {{.State.ExitCode}}{{if .State.Health}}, health {{.State.Health.Status}}{{end}}' "$c" 2>&1)"
  local hc
  hc=$(dk inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{"\n"}}{{end}}{{end}}' "$c" 2>/dev/null | sed '/^$/d' | tail -n 2)
  [ -n "$hc" ] && { log "last health checks of $c:"; printf '%s\n' "$hc" | sed 's/^/    /' >&2; }
  log "last $LOG_LINES log lines of $c:"
  dk logs --tail "$LOG_LINES" "$c" 2>&1 | sed 's/^/    /' >&2 || true
}

# Wait until every container of the project runs and is healthy, or fail by $1 (epoch s).
wait_healthy() {
  local deadline=$1 expected=$2 lines ids=() bad=() line name state health
  while :; do
    mapfile -t lines < <(project_containers)
    ids=()
    for line in "${lines[@]}"; do ids+=("$(awk '{print $2}' <<<"$line")"); done
    bad=()
    if [ ${#ids[@]} -gt 0 ]; then
      while read -r name state health; do
        [ -z "$name" ] && continue
        case "$state/$health" in
          running/healthy | running/none) ;;
          exited/* | dead/*) explain "$name"; die "$name is $state: it will not become healthy (after $(elapsed))" ;;
          *) bad+=("$name ($state${health:+, $health})") ;;
        esac
      done < <(states "${ids[@]}" 2>/dev/null || true)
    fi
    if [ ${#ids[@]} -lt "$expected" ]; then
      bad+=("$(( expected - ${#ids[@]} )) of $expected services have no container yet")
    fi
    [ ${#bad[@]} -eq 0 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "not healthy after $(elapsed) (STACK_UP_TIMEOUT=$UP_TIMEOUT): ${bad[*]}"
      for line in "${bad[@]}"; do
        name=${line%% *}
        dk container inspect "$name" >/dev/null 2>&1 && explain "$name"
      done
      die "the stack is not healthy; see above, fix, then make stack-up again (make stack-down removes it)"
    fi
    sleep 1
  done
}

expected_services() {
  local n=8   # coordinator, 3 sample services, the exchange link, postgres, redis, prometheus
  [ "${STACK_GRAFANA:-0}" = 1 ] && n=$((n + 1))
  echo "$n"
}

# -- commands ------------------------------------------------------------------------

cmd_up() {
  use_engine
  pick_compose
  log "engine $DOCKER_HOST; compose: ${COMPOSE[*]}; project $PROJECT"
  images
  prepare_host
  check_ports
  local deadline=$(( $(date +%s) + UP_TIMEOUT )) t=$SECONDS rc=0
  log "starting the stack (deadline ${UP_TIMEOUT} s)"
  timeout "$UP_TIMEOUT" "${COMPOSE[@]}" "${COMPOSE_ARGS[@]}" up -d --no-build --remove-orphans \
    >/tmp/stack-compose-up.log 2>&1 || rc=$?
  if [ $rc != 0 ]; then
    sed 's/^/    /' /tmp/stack-compose-up.log | tail -n 20 >&2
    if [ $rc = 124 ]; then
      log "compose up did not return within ${UP_TIMEOUT} s"
    else
      log "compose up failed (exit $rc)"
    fi
    wait_healthy "$(date +%s)" "$(expected_services)"   # names what is not healthy, then exits
    die "compose up failed"
  fi
  wait_healthy "$deadline" "$(expected_services)"
  # From the host too: the published port and the coordinator's own view of its dependencies.
  local health=""
  while :; do
    health=$(curl -s -m 3 "http://127.0.0.1:$TC_HTTP_HOST_PORT/api/v1/health" 2>/dev/null || true)
    case "$health" in *'"status":"healthy"'*) break ;; esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      explain "$COORD"
      die "the coordinator does not answer healthy on 127.0.0.1:$TC_HTTP_HOST_PORT (last answer: ${health:-none})"
    fi
    sleep 1
  done
  log "up: $(expected_services) services healthy in $((SECONDS - t)) s (total $(elapsed))"
  cat >&2 <<EOF
  coordinator  http://127.0.0.1:$TC_HTTP_HOST_PORT/api/v1/health   gRPC 127.0.0.1:$TC_GRPC_HOST_PORT
  runs API     Authorization: Bearer \$(cat $STACK_TOKEN_FILE)   (docs/runs-api.md)
  prometheus   http://127.0.0.1:$PROMETHEUS_HOST_PORT/targets${GRAFANA_IMAGE:+
  grafana      http://127.0.0.1:$GRAFANA_HOST_PORT/}
  reports      $STACK_REPORTS_DIR
  next         make stack-run   (scripts/stack.sh run);   make stack-down
EOF
}

# Restart the engine when a previous run closed its trading (it makes no order after a halt).
reopen_trading() {
  local out
  out=$(timeout 20 "${DK[@]}" exec "$COORD" python -c "
import json, urllib.request as u
print(json.load(u.urlopen('http://$ENGINE_CONTAINER:8080/api/v1/orders/stats', timeout=3))['halted'])
" 2>&1) || { log "could not read the engine's order stats: $out"; return 0; }
  [ "$out" = True ] || return 0
  log "trading was closed by a previous run: restarting $ENGINE_CONTAINER"
  timeout 30 "${DK[@]}" restart -t 5 "$ENGINE_CONTAINER" >/dev/null \
    || die "could not restart $ENGINE_CONTAINER within 30 s"
  out=$(timeout 70 "${DK[@]}" exec "$COORD" python -c "
import json, sys, time, urllib.request as u
deadline, last = time.monotonic() + 60, 'no answer'
while time.monotonic() < deadline:
    try:
        h = json.load(u.urlopen('http://$ENGINE_CONTAINER:8080/api/v1/health', timeout=2))
        s = json.load(u.urlopen('http://$ENGINE_CONTAINER:8080/api/v1/orders/stats', timeout=2))
        last = f\"health {h.get('status')}, halted {s.get('halted')}\"
        if h.get('status') == 'healthy' and not s.get('halted'):
            sys.exit(0)
    except Exception as exc:
        last = repr(exc)
    time.sleep(0.5)
print(last)
sys.exit(1)
" 2>&1) || { explain "$ENGINE_CONTAINER"; die "$ENGINE_CONTAINER is not trading again within 60 s: $out"; }
}

cmd_run() {
  local scenario=$DEFAULT_SCENARIO args=()
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then scenario=$1; shift; fi
  args=("$@")
  use_engine
  dk container inspect "$COORD" >/dev/null 2>&1 || die "the stack is not up (no container $COORD): make stack-up first"
  # Every service healthy before faults are injected (a run on a sick stack proves nothing);
  # a service a previous run restarted may still be "starting" (its next health check).
  local ids name state health sick=() deadline=$(( $(date +%s) + ${STACK_READY_TIMEOUT:-60} ))
  ids=$(project_containers | awk '{print $2}')
  while :; do
    sick=()
    # shellcheck disable=SC2086
    while read -r name state health; do
      case "$state/$health" in running/healthy | running/none) ;; *) sick+=("$name:$state/$health") ;; esac
    done < <(states $ids)
    [ ${#sick[@]} -eq 0 ] && break
    case "${sick[*]}" in *unhealthy* | *exited* | *dead*) ;; *)
      if [ "$(date +%s)" -lt "$deadline" ]; then sleep 1; continue; fi ;;
    esac
    for name in "${sick[@]}"; do explain "${name%%:*}"; done
    die "not healthy: ${sick[*]}; restart it (docker restart NAME) or make stack-down stack-up"
  done
  local in_container
  case "$scenario" in
    /app/*) in_container=$scenario ;;
    *)
      local abs rel
      abs=$(realpath -m "$scenario")
      rel=${abs#"$DEPLOY/scenarios"}
      [ "$rel" != "$abs" ] || die "$scenario: give a scenario under deploy/scenarios/ (mounted in the container) or a path inside it (/app/...)"
      [ -e "$abs" ] || die "$scenario: no such file"
      in_container=$SCENARIOS_IN_CONTAINER$rel ;;
  esac
  # One run at a time against the stack: each reopens trading before it and closes it at its
  # end, and two faulting one proxy would spoil each other's measurements. Another waits.
  local lock_fd
  exec {lock_fd}>"${TMPDIR:-/tmp}/$PROJECT-stack-run.lock"
  if ! flock -n "$lock_fd"; then
    log "another run against the stack is in progress: waiting for it (at most $RUN_TIMEOUT s)"
    flock -w "$RUN_TIMEOUT" "$lock_fd" || die "the other run did not end within $RUN_TIMEOUT s"
  fi
  reopen_trading
  local run_id="" rc=0 tty=() started waited=0 out
  [ -t 0 ] && [ -t 1 ] && tty=(-t)
  out=$(mktemp)
  # shellcheck disable=SC2064
  trap "rm -f '$out'" RETURN
  log "running $in_container in $COORD (deadline $RUN_TIMEOUT s)"
  started=$SECONDS
  # timeout inside the container sends SIGINT: the run undoes its faults and writes its reports.
  # The coordinator's own log lines (JSON in its container) only from WARNING: the run's
  # progress and verdict stay readable; STACK_RUN_LOG_LEVEL=INFO shows them all. Its output
  # is kept too: the run's id (its first line names it) finds its report, whatever other
  # runs write to the same folder meanwhile.
  timeout -k 30 "$((RUN_TIMEOUT + 30))" "${DK[@]}" exec "${tty[@]}" -w /app \
    -e "LOG_LEVEL=${STACK_RUN_LOG_LEVEL:-WARNING}" "$COORD" \
    timeout -s INT -k 20 "$RUN_TIMEOUT" \
    test-coordinator run "$in_container" --reports-dir "$REPORTS_IN_CONTAINER" "${args[@]}" \
    | tee "$out" || rc=$?
  run_id=$(grep -ao 'run [0-9]\{8\}-[0-9]\{6\}-[0-9a-f]\{6\}' "$out" | head -n 1 | cut -c5- || true)
  if [ $rc = 137 ] && [ $((SECONDS - started)) -lt "$RUN_TIMEOUT" ]; then
    # Killed: its guard (a process of its own in the container) undoes what the run left and
    # writes the aborted run's report; wait for that report, bounded.
    log "the run was killed (SIGKILL); its guard undoes what it left and writes the report"
    while [ -n "$run_id" ] && [ $waited -lt 30 ] && [ ! -e "$STACK_REPORTS_DIR/$run_id/report.html" ]; do
      sleep 1
      waited=$((waited + 1))
    done
  elif [ $rc = 124 ] || [ $rc = 137 ]; then
    log "the run did not end within $RUN_TIMEOUT s"
  fi
  if [ -n "$run_id" ] && [ -e "$STACK_REPORTS_DIR/$run_id/report.html" ]; then
    log "report: $STACK_REPORTS_DIR/$run_id/report.html  (open file://$STACK_REPORTS_DIR/$run_id/report.html)"
  else
    log "no report of this run under $STACK_REPORTS_DIR${run_id:+ (run $run_id)}"
  fi
  log "run exit code $rc in $(elapsed)"
  return $rc
}

cmd_down() {
  use_engine
  pick_compose
  local t=$SECONDS rc=0
  STACK_GRAFANA=1   # remove the profile's container too, if it was started
  COMPOSE_ARGS+=(--profile grafana)
  timeout "$DOWN_TIMEOUT" "${COMPOSE[@]}" "${COMPOSE_ARGS[@]}" down -v --remove-orphans -t 10 \
    >/tmp/stack-compose-down.log 2>&1 || rc=$?
  if [ $rc != 0 ]; then
    sed 's/^/    /' /tmp/stack-compose-down.log | tail -n 20 >&2
    log "compose down failed (exit $rc): removing what is left by hand"
  fi
  # Whatever compose left (a failed down, a container from another compose): remove it.
  local left
  left=$(dk ps -aq --filter "label=com.docker.compose.project=$PROJECT")
  # shellcheck disable=SC2086
  [ -n "$left" ] && { log "removing containers $left"; timeout 60 "${DK[@]}" rm -f -v $left >/dev/null || true; }
  dk network inspect "$NETWORK" >/dev/null 2>&1 && { log "removing network $NETWORK"; timeout 30 "${DK[@]}" network rm "$NETWORK" >/dev/null || true; }
  left=$(dk volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  # shellcheck disable=SC2086
  [ -n "$left" ] && { log "removing volumes $left"; timeout 30 "${DK[@]}" volume rm -f $left >/dev/null || true; }
  # Check.
  local c n v
  c=$(dk ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}' | tr '\n' ' ')
  n=$(dk network ls --filter "name=^$NETWORK\$" --format '{{.Name}}' | grep -x "$NETWORK" || true)
  v=$(dk volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | tr '\n' ' ')
  if [ -n "${c// /}" ] || [ -n "$n" ] || [ -n "${v// /}" ]; then
    die "still there after down: containers [${c% }] network [$n] volumes [${v% }]"
  fi
  log "down in $((SECONDS - t)) s: no container, network or volume of $PROJECT is left (reports stay in $STACK_REPORTS_DIR)"
}

cmd_status() {
  use_engine
  local ids
  ids=$(project_containers | awk '{print $2}')
  [ -n "$ids" ] || { log "no container of $PROJECT"; return 0; }
  # shellcheck disable=SC2086
  states $ids | column -t
}

cmd_logs() {
  use_engine
  pick_compose
  compose logs --tail "$LOG_LINES" "$@"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  run) shift; cmd_run "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) shift; cmd_status "$@" ;;
  logs) shift; cmd_logs "$@" ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) log "usage: scripts/stack.sh up|run [SCENARIO] [OPTIONS]|down|status|logs [SERVICE] (--help)"; exit 2 ;;
esac
