#!/usr/bin/env bash
# Provide a Docker-API-compatible engine for the Docker-backend tests and for
# users: rootful Podman serving the Docker API on a unix socket, plus two small
# local images. Debian/Ubuntu with apt; run as root. No image registry needed.
#
# Usage:
#   scripts/docker-engine.sh               start (idempotent), say how to use it
#   eval "$(scripts/docker-engine.sh --print-env)"
#                                          start, then export DOCKER_HOST
#   scripts/docker-engine.sh --stop        stop what this script started (by PID)
#
# If DOCKER_HOST is already set and that engine answers /_ping (e.g. real
# Docker), nothing is installed or started: that engine is used as it is.
# Otherwise: apt-get installs podman, runc, busybox-static (and iptables, curl, catatonit)
# if missing, writes /etc/containers/containers.conf (only if absent or written
# by this script), starts `podman system service` on $SOCK, starts the health
# pump (below) and builds, from the busybox-static binary:
#   localhost/tc-busybox:latest  busybox with sh, sleep, httpd, nc, wget, ...
#   localhost/tc-httpd:latest    busybox httpd serving /www on port 8080;
#                                GET /api/v1/health returns {"status":"healthy"}.
#                                httpd as PID 1 ignores SIGTERM: stop it with a
#                                short timeout, or run it with init=True.
# A Debian+Python base image (python:3.11-slim for the Dockerfile) and compose
# stand-ins: scripts/base-image.sh.
#
# Health pump: Podman schedules HEALTHCHECKs with systemd timers; without
# systemd (containers, CI) they never run and every container stays "starting".
# The pump is a small stdlib-only scheduler that asks the engine to run each
# running container's check every Interval. TC_HEALTH_PUMP=1|0|auto (default
# auto: on when systemd is not PID 1).
#
# Differences from Docker that tests must tolerate (Podman 4.3):
#   - without CAP_SYS_RESOURCE, containers get nofile/nproc 1024 by default, and
#     a container that sets any ulimit must set BOTH nofile and nproc (the one
#     left out goes to the host maximum, which cannot be raised: "error setting
#     rlimit type 6/7: operation not permitted").
#   - no registry here: pull nothing (--pull=never); use local images/tags.
#   - events: stop gives die+cleanup, remove gives "remove" (Docker: destroy),
#     health gives a bare "health_status" (inspect for the state).
set -u

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # shellcheck disable=SC2016  # literal on purpose
  echo 'docker-engine.sh: run it, do not source it: eval "$(scripts/docker-engine.sh --print-env)"' >&2
  return 1
fi

SOCK=/run/podman/podman.sock
OUR_HOST="unix://$SOCK"
RUN_DIR=/run/podman
LOG=/tmp/podman-service.log
APT_LOG=/tmp/docker-engine-apt.log
SERVICE_PID=$RUN_DIR/tc-podman-service.pid
PUMP_PID=$RUN_DIR/tc-health-pump.pid
PUMP_PY=$RUN_DIR/tc-health-pump.py
PUMP_LOG=/tmp/podman-health-pump.log
CONF=/etc/containers/containers.conf
CONF_MARK="# written by test-coordinator scripts/docker-engine.sh"

log() { echo "docker-engine.sh: $*" >&2; }

# Does the engine at Docker host URL $1 answer GET /_ping with OK?
ping_host() {
  local h=$1 out
  case "$h" in
    unix://*) out=$(curl -s -m 5 --unix-socket "${h#unix://}" http://d/_ping 2>/dev/null) ;;
    tcp://*|http://*|https://*)
      local hp=${h#*://} scheme=http tls=()
      if [ -n "${DOCKER_TLS_VERIFY:-}" ] || [ "${h%%://*}" = https ]; then
        scheme=https
        local c=${DOCKER_CERT_PATH:-$HOME/.docker}
        tls=(--cacert "$c/ca.pem" --cert "$c/cert.pem" --key "$c/key.pem")
      fi
      out=$(curl -s -m 5 "${tls[@]}" "$scheme://${hp%/}/_ping" 2>/dev/null) ;;
    *)  # ssh:// and others: ask the docker CLI, if there is one
      command -v docker >/dev/null 2>&1 && DOCKER_HOST=$h timeout 10 docker version >/dev/null 2>&1 && out=OK ;;
  esac
  [ "${out:-}" = OK ]
}

ping_ours() { ping_host "$OUR_HOST"; }

# True when the PID in file $1 is alive and its command line contains $2.
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# Whether the process in pidfile $1 runs in a folder that was removed since.
cwd_gone() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] || return 1
  case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in *" (deleted)") return 0 ;; esac
  return 1
}

# Start "$@" detached (own session, stdin closed, output to $2), PID into $1.
spawn() {
  local pidfile=$1 out=$2; shift 2
  rm -f "$pidfile"
  # From /: a process keeps the folder it started in as its working directory, and a
  # service started from a folder removed since (a CI clone) starts no container: conmon,
  # which it spawns there, fails "Failed to get working directory" (runc: "write child:
  # broken pipe").
  # shellcheck disable=SC2016  # expanded by the inner sh
  (cd / && exec setsid sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" </dev/null >"$out" 2>&1) &
  for _ in $(seq 1 50); do [ -s "$pidfile" ] && return 0; sleep 0.05; done
  return 1
}

install_packages() {
  local pkgs=()
  command -v podman >/dev/null 2>&1 || pkgs+=(podman)
  command -v runc >/dev/null 2>&1 || pkgs+=(runc)
  command -v busybox >/dev/null 2>&1 || pkgs+=(busybox-static)
  command -v iptables >/dev/null 2>&1 || pkgs+=(iptables)   # netavark's NAT/port rules
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  # The init a container started with init: true runs as PID 1 (a Recommends of podman).
  [ -x /usr/libexec/podman/catatonit ] || pkgs+=(catatonit)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || { log "missing ${pkgs[*]} and no apt-get"; return 1; }
  [ "$(id -u)" = 0 ] || { log "missing ${pkgs[*]}: run as root to install them"; return 1; }
  log "installing ${pkgs[*]} (log: $APT_LOG)"
  export DEBIAN_FRONTEND=noninteractive
  # Package lists may be stale or absent: update only if the install needs it.
  { apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${pkgs[@]}" || { apt-get -o DPkg::Lock::Timeout=300 update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${pkgs[@]}"; }; } \
    >"$APT_LOG" 2>&1 || { log "apt-get install ${pkgs[*]} failed (see $APT_LOG)"; return 1; }
}

# runc and cgroupfs: crun refuses cgroups v1 hybrid, and there may be no
# systemd. Low default ulimits only when raising rlimits is not permitted.
write_conf() {
  if [ -e "$CONF" ] && ! grep -qF "$CONF_MARK" "$CONF"; then
    log "keeping the existing $CONF (not written by this script)"
    return 0
  fi
  local cap ulimits=""
  cap=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
  if [ -n "$cap" ] && [ $(( 0x$cap >> 24 & 1 )) = 0 ]; then   # no CAP_SYS_RESOURCE
    ulimits='default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]'
  fi
  mkdir -p /etc/containers
  local new
  new=$(printf '%s\n' "$CONF_MARK" '[containers]' "$ulimits" '[engine]' 'runtime = "runc"' \
    'cgroup_manager = "cgroupfs"' 'events_logger = "file"')
  [ "$(cat "$CONF" 2>/dev/null)" = "$new" ] || printf '%s\n' "$new" > "$CONF"
}

write_pump() {
  cat > "$PUMP_PY" <<'PY'
"""Run HEALTHCHECKs for a Podman API service that has no systemd to schedule them.

For each running container with a health check, ask the service to run it
(GET /libpod/containers/{id}/healthcheck) every Interval, the first time
Interval after the container started, as Docker does. Podman then updates
State.Health and honours StartPeriod and Retries itself. Standard library only.
"""
import http.client, json, os, socket, threading, time, urllib.parse

SOCK = os.environ.get("TC_PODMAN_SOCK", "/run/podman/podman.sock")
TICK = float(os.environ.get("TC_HEALTH_TICK", "1"))


class Conn(http.client.HTTPConnection):
    def __init__(self, timeout):
        super().__init__("localhost", timeout=timeout)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(SOCK)
        self.sock = s


def call(path, timeout=30.0):
    c = Conn(timeout)
    try:
        c.request("GET", "/v4.0.0/libpod" + path)
        r = c.getresponse()
        body = r.read()
        return r.status, (json.loads(body) if body else None)
    finally:
        c.close()


def interval(cid):
    status, info = call(f"/containers/{cid}/json")
    hc = ((info or {}).get("Config") or {}).get("Healthcheck") or {} if status == 200 else {}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return (hc.get("Interval") or 30_000_000_000) / 1e9


def run_check(cid, busy, lock):
    try:
        call(f"/containers/{cid}/healthcheck", timeout=300)
    except OSError:
        pass
    finally:
        with lock:
            busy.discard(cid)


def main():
    plan, busy, lock = {}, set(), threading.Lock()
    flt = urllib.parse.quote(json.dumps({"status": ["running"]}))
    while True:
        try:
            status, listing = call(f"/containers/json?filters={flt}")
        except (OSError, ValueError):
            time.sleep(TICK)
            continue
        now, live = time.monotonic(), set()
        for c in listing if status == 200 and isinstance(listing, list) else []:
            key = (c["Id"], c.get("StartedAt"))
            live.add(key)
            if key not in plan:
                try:
                    iv = interval(c["Id"])
                except (OSError, ValueError):
                    continue
                started = c.get("StartedAt") or time.time()
                plan[key] = None if iv is None else [now + max(0.0, started + iv - time.time()), iv]
            entry = plan[key]
            if entry is None or now < entry[0]:
                continue
            with lock:
                if c["Id"] in busy:
                    continue
                busy.add(c["Id"])
            entry[0] = now + entry[1]
            threading.Thread(target=run_check, args=(c["Id"], busy, lock), daemon=True).start()
        for key in [k for k in plan if k not in live]:
            del plan[key]
        time.sleep(TICK)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
PY
}

want_pump() {
  case "${TC_HEALTH_PUMP:-auto}" in
    0|no|false) return 1 ;;
    auto) [ ! -d /run/systemd/system ] ;;
    *) return 0 ;;
  esac
}

build_images() {
  podman image exists localhost/tc-busybox:latest && podman image exists localhost/tc-httpd:latest && return 0
  local d a
  d=$(mktemp -d /tmp/tc-busybox.XXXXXX)
  mkdir -p "$d/root/bin" "$d/root/www/api/v1" "$d/root/tmp"
  cp "$(command -v busybox)" "$d/root/bin/busybox"
  for a in sh ash sleep httpd echo cat ls nc ps kill date printf true false wget env; do
    ln -sf busybox "$d/root/bin/$a"
  done
  printf '{"status":"healthy"}' > "$d/root/www/api/v1/health"
  tar -C "$d/root" -cf "$d/root.tar" .
  podman import -q --change 'CMD ["/bin/sh"]' "$d/root.tar" localhost/tc-busybox:latest >/dev/null \
    && podman import -q --change 'CMD ["/bin/httpd","-f","-p","8080","-h","/www"]' --change 'EXPOSE 8080' \
      "$d/root.tar" localhost/tc-httpd:latest >/dev/null
  local rc=$?
  rm -rf "$d"
  [ $rc = 0 ] || log "building localhost/tc-busybox / tc-httpd failed"
  return $rc
}

# Prints the DOCKER_HOST to use on stdout; everything else goes to stderr.
start() {
  if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "$OUR_HOST" ]; then
    if ping_host "$DOCKER_HOST"; then
      log "DOCKER_HOST=$DOCKER_HOST answers; using that engine, starting nothing"
      echo "$DOCKER_HOST"
      return 0
    fi
    log "DOCKER_HOST=$DOCKER_HOST does not answer; starting Podman on $OUR_HOST instead"
  fi
  install_packages || return 1
  mkdir -p "$RUN_DIR"
  write_conf
  if alive "$SERVICE_PID" "system service" && cwd_gone "$SERVICE_PID"; then
    log "the running podman service was started in a folder removed since: restarting it"
    stop
  fi
  if ! ping_ours; then
    spawn "$SERVICE_PID" "$LOG" podman system service --time=0 "$OUR_HOST" \
      || { log "could not start podman system service (see $LOG)"; return 1; }
    for _ in $(seq 1 100); do ping_ours && break; sleep 0.1; done
  fi
  ping_ours || { log "the engine did not answer on $SOCK (see $LOG)"; return 1; }
  if want_pump && ! alive "$PUMP_PID" tc-health-pump; then
    write_pump
    spawn "$PUMP_PID" "$PUMP_LOG" "$(command -v /usr/bin/python3 || command -v python3)" "$PUMP_PY" \
      || log "could not start the health pump (see $PUMP_LOG)"
  fi
  build_images || return 1
  echo "$OUR_HOST"
}

# Stop the health pump and the service this script started (by their PIDs only).
# Containers are left as they are; they run again when the service is back.
stop() {
  local f pid
  for f in "$PUMP_PID:tc-health-pump" "$SERVICE_PID:system service"; do
    if alive "${f%%:*}" "${f#*:}"; then
      pid=$(cat "${f%%:*}")
      kill "$pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "${f%%:*}"
  done
}

case "${1:-}" in
  --print-env) host=$(start) || exit 1; echo "export DOCKER_HOST=$host" ;;
  --stop) stop ;;
  "") host=$(start) || exit 1; echo "Docker API ready: export DOCKER_HOST=$host" ;;
  -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) log "unknown option $1 (use --print-env, --stop or --help)"; exit 2 ;;
esac
