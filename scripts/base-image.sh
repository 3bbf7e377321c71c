#!/usr/bin/env bash
# Make `FROM python:3.11-slim` (the project's Dockerfile) build on the local
# Podman engine without any image registry: build a real Debian + Python base
# image from the apt mirror this machine already uses (read from /etc/apt at
# run time) with mmdebstrap (debootstrap as a fallback), load it with
# `podman import`, and tag it with the short name the Dockerfile uses.
#
# Usage:  scripts/base-image.sh [--force] [--stack] [--upstream-tags]
#   (starts the engine with scripts/docker-engine.sh if needed; run as root)
#
# Images:
#   localhost/tc-python:bookworm   Debian 12 minbase, python3 (3.11), python3-venv,
#                                  python3-pip, python (python-is-python3), CA
#                                  certificates incl. this machine's extra CAs; the
#                                  standard library byte-compiled (a non-root user
#                                  cannot write __pycache__: without it, every Python
#                                  start compiles what it imports, about 2 s of CPU
#                                  for the coordinator)
#   localhost/python:3.11-slim     the same image: Podman resolves the short name
#                                  python:3.11-slim to it, so the Dockerfile builds
#                                  unchanged with --pull=never. NOT the official
#                                  image (Debian's /usr/bin/python3, not /usr/local).
# Nothing is built or tagged for that name when python:3.11-slim is already
# present locally (e.g. pulled from a registry); TC_PYTHON_ALIAS="" skips the tag.
#
# --stack adds stand-ins for the compose stack's services, built FROM the base
# with Debian packages (apt inside the build):
#   localhost/tc-postgres:15       postgresql-15; POSTGRES_USER/PASSWORD/DB, PGDATA
#                                  as the official image; pg_isready on PATH
#   localhost/tc-redis:7           redis-server 7.0, protected mode off, WORKDIR /data
#   localhost/tc-prometheus:2      prometheus 2.42, ENTRYPOINT prometheus
#   localhost/tc-grafana:standin   NOT Grafana (no Debian package): busybox httpd on
#                                  :3000 answering GET /api/health
# --upstream-tags (implies --stack) also tags them localhost/<name> for the names
# deploy/docker-compose.yml uses (TC_UPSTREAM_TAGS), unless such an image is
# already present, so that file runs with its image names unchanged.
#
# Idempotent: images that exist are kept unless --force.
# About 30-40 s (mmdebstrap) or 60-100 s (debootstrap) for the base on 2 cores,
# about 40 s more for --stack. Base about 150 MB (25 MB of it the byte-compiled stdlib).
set -eu

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=${TC_BASE_SUITE:-bookworm}
IMAGE=${TC_BASE_IMAGE:-localhost/tc-python:$SUITE}
PY_ALIAS=${TC_PYTHON_ALIAS-localhost/python:3.11-slim}
TOOL=${TC_BASE_TOOL:-auto}   # auto | mmdebstrap | debootstrap
UPSTREAM_TAGS=${TC_UPSTREAM_TAGS:-"tc-postgres:15=localhost/postgres:15-alpine tc-redis:7=localhost/redis:7-alpine tc-prometheus:2=localhost/prom/prometheus:v2.53.0 tc-grafana:standin=localhost/grafana/grafana:11.1.0"}
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
LABEL=org.trading-ecosystem.tc-local-image   # marks images this script made
FORCE=0 STACK=0 UPSTREAM=0
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    --stack) STACK=1 ;;
    --upstream-tags) STACK=1; UPSTREAM=1 ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "base-image.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

log() { echo "base-image.sh: $*" >&2; }

# First URI that /etc/apt configures for suite $1 (one-line or deb822 format).
apt_mirror() {
  local suite=$1 f u
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    u=$(awk -v s="$suite" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }; if ($(i+1)==s) { print $i; exit } }' "$f")
    [ -n "$u" ] && { echo "$u"; return 0; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    u=$(awk -v s="$suite" 'BEGIN { RS=""; FS="\n" }
      { uris=""; suites=""; types=""; en=1
        for (i=1; i<=NF; i++) {
          if ($i ~ /^URIs:/)   { v=$i; sub(/^URIs:[ \t]*/, "", v); uris=v }
          if ($i ~ /^Suites:/) { v=$i; sub(/^Suites:[ \t]*/, "", v); suites=" " v " " }
          if ($i ~ /^Types:/)  { v=$i; sub(/^Types:[ \t]*/, "", v); types=" " v " " }
          if ($i ~ /^Enabled:[ \t]*[Nn]o/) en=0 }
        if (en && index(types, " deb ") && index(suites, " " s " ")) { split(uris, a, " "); print a[1]; exit } }' "$f")
    [ -n "$u" ] && { echo "$u"; return 0; }
  done
  return 1
}

# Make sure the local Podman engine runs. With DOCKER_HOST pointing at another
# engine (e.g. real Docker), this script has nothing to build there.
engine() {
  local env
  env=$("$HERE/docker-engine.sh" --print-env) || { log "the engine did not start"; exit 1; }
  eval "$env"
  if [ "$DOCKER_HOST" != unix:///run/podman/podman.sock ]; then
    if command -v docker >/dev/null 2>&1 && docker image inspect python:3.11-slim >/dev/null 2>&1; then
      log "DOCKER_HOST=$DOCKER_HOST (another engine) has python:3.11-slim; nothing to do"
      exit 0
    fi
    log "DOCKER_HOST=$DOCKER_HOST is another engine; this script builds for the local Podman only."
    log "With Docker and a registry: docker pull python:3.11-slim"
    exit 1
  fi
}

# "ours" if name $1 resolves to an image this script made (or to $2's image),
# "foreign" if it resolves to some other image, "none" if it is not present.
owner() {
  local name=$1 mine=${2:-} id
  podman image exists "$name" || { echo none; return; }
  if [ -n "$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$name" 2>/dev/null)" ]; then
    echo ours; return
  fi
  id=$(podman image inspect --format '{{.Id}}' "$name")
  if [ -n "$mine" ] && podman image exists "$mine" && [ "$id" = "$(podman image inspect --format '{{.Id}}' "$mine")" ]; then
    echo ours
  else
    echo foreign
  fi
}

build_base() {
  local main upd sec work lines=()
  main=$(apt_mirror "$SUITE") || { log "no apt mirror for $SUITE in /etc/apt"; exit 1; }
  lines+=("deb $main $SUITE main")
  upd=$(apt_mirror "$SUITE-updates") && lines+=("deb $upd $SUITE-updates main")
  sec=$(apt_mirror "$SUITE-security") && lines+=("deb $sec $SUITE-security main")
  work=$(mktemp -d /tmp/tc-base-image.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT

  local tool=$TOOL
  if [ "$tool" = auto ]; then
    if command -v mmdebstrap >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=300 install -y -qq mmdebstrap >/dev/null 2>&1 \
       || { apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null 2>&1 && apt-get -o DPkg::Lock::Timeout=300 install -y -qq mmdebstrap >/dev/null 2>&1; }; then
      tool=mmdebstrap
    else
      tool=debootstrap
    fi
  fi
  local t0=$SECONDS
  log "building $IMAGE with $tool from $main"
  if [ "$tool" = mmdebstrap ]; then
    command -v mmdebstrap >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=300 install -y -qq mmdebstrap >/dev/null
    # shellcheck disable=SC2016  # the hooks are expanded by mmdebstrap's sh
    # merged-usr hook: the layout without the usrmerge package (and its perl).
    mmdebstrap --quiet --mode=root --variant=minbase --include="$PACKAGES" \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --customize-hook='for c in /usr/local/share/ca-certificates/*.crt; do [ -e "$c" ] && cp "$c" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates >/dev/null 2>&1' \
      --customize-hook='chroot "$1" python3 -m compileall -q /usr/lib/python3.11 /usr/lib/python3/dist-packages >/dev/null 2>&1 || true' \
      "$SUITE" "$work/rootfs.tar" "${lines[@]}" >"$work/log" 2>&1 \
      || { tail -20 "$work/log" >&2; log "mmdebstrap failed"; exit 1; }
  else
    command -v debootstrap >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null
    local r=$work/rootfs
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$r" "$main" >"$work/log" 2>&1 \
      || { tail -20 "$work/log" >&2; log "debootstrap failed"; exit 1; }
    printf '%s\n' "${lines[@]}" > "$r/etc/apt/sources.list"
    # security and point-release updates (debootstrap only reads the main suite)
    chroot "$r" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade' >>"$work/log" 2>&1 \
      || { tail -20 "$work/log" >&2; log "apt-get upgrade in the new root failed"; exit 1; }
    # A TLS-inspecting egress needs this machine's extra CAs inside containers too.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
      chroot "$r" update-ca-certificates >/dev/null 2>&1
    fi
    chroot "$r" apt-get clean
    rm -rf "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/var/log/*.log
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    chroot "$r" python3 -m compileall -q /usr/lib/python3.11 /usr/lib/python3/dist-packages >/dev/null 2>&1 || true
    tar -C "$r" --numeric-owner -cf "$work/rootfs.tar" .
  fi
  podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL $LABEL=python-base" \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$IMAGE" >/dev/null
  rm -rf "$work"; trap - EXIT
  log "built $IMAGE with $tool in $((SECONDS - t0)) s"
}

build_stack() {
  local d name
  d=$(mktemp -d /tmp/tc-stack.XXXXXX)
  mkdir -p "$d/postgres" "$d/redis" "$d/prometheus" "$d/grafana"
  cat > "$d/postgres/Containerfile" <<EOF
FROM $IMAGE
RUN mkdir -p /etc/postgresql-common/createcluster.d \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/tc.conf \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/tc-postgres-entrypoint
ENTRYPOINT ["/usr/local/bin/tc-postgres-entrypoint"]
CMD ["postgres"]
STOPSIGNAL SIGINT
EXPOSE 5432
LABEL $LABEL=postgres-standin
EOF
  cat > "$d/postgres/entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the postgres image's entrypoint: POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB and PGDATA as the official image reads them.
set -e
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}" "${POSTGRES_PASSWORD:=postgres}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp); printf '%s\n' "$POSTGRES_PASSWORD" > "$pw"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pw"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != "$POSTGRES_USER" ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\";" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
fi
if [ "$1" = postgres ]; then shift; exec postgres -D "$PGDATA" -k /run/postgresql "$@"; fi
exec "$@"
EOF
  cat > "$d/redis/Containerfile" <<EOF
FROM $IMAGE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \\
 && mkdir -p /data
WORKDIR /data
COPY entrypoint.sh /usr/local/bin/tc-redis-entrypoint
ENTRYPOINT ["/usr/local/bin/tc-redis-entrypoint"]
CMD ["redis-server"]
EXPOSE 6379
LABEL $LABEL=redis-standin
EOF
  cat > "$d/redis/entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the redis image's entrypoint: reachable from other containers.
if [ "$1" = redis-server ]; then shift; exec redis-server --protected-mode no --bind 0.0.0.0 "$@"; fi
exec "$@"
EOF
  cat > "$d/prometheus/Containerfile" <<EOF
FROM $IMAGE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \\
 && mkdir -p /prometheus /etc/prometheus
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EXPOSE 9090
LABEL $LABEL=prometheus-standin
EOF
  cat > "$d/grafana/Containerfile" <<EOF
# Not Grafana (Debian has no grafana package): busybox httpd on :3000 answering
# GET /api/health, so a stack's wiring (network, ports, depends_on) can be tested.
FROM localhost/tc-busybox:latest
RUN mkdir -p /www/api && printf '{"database":"ok","version":"stand-in"}' > /www/api/health
EXPOSE 3000
CMD ["/bin/sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 3000 -h /www & wait"]
LABEL $LABEL=grafana-standin
EOF
  chmod +x "$d/postgres/entrypoint.sh" "$d/redis/entrypoint.sh"
  for name in postgres:15 redis:7 prometheus:2 grafana:standin; do
    if [ "$FORCE" = 1 ] || ! podman image exists "localhost/tc-$name"; then
      local t0=$SECONDS
      podman build -q --pull=never --format docker -t "localhost/tc-$name" "$d/${name%%:*}" >"$d/build.log" 2>&1 \
        || { tail -20 "$d/build.log" >&2; log "building localhost/tc-$name failed"; rm -rf "$d"; exit 1; }
      log "built localhost/tc-$name in $((SECONDS - t0)) s"
    fi
  done
  rm -rf "$d"
}

engine

alias_state=none
[ -n "$PY_ALIAS" ] && alias_state=$(owner "${PY_ALIAS#localhost/}" "$IMAGE")
if [ "$alias_state" = foreign ]; then
  log "${PY_ALIAS#localhost/} is already present locally; not building or tagging it"
fi
if [ "$FORCE" = 1 ] || { ! podman image exists "$IMAGE" && { [ "$alias_state" != foreign ] || [ "$STACK" = 1 ]; }; }; then
  build_base
fi
if [ -n "$PY_ALIAS" ] && [ "$alias_state" != foreign ]; then
  podman tag "$IMAGE" "$PY_ALIAS"
fi
if [ "$STACK" = 1 ]; then
  build_stack
  if [ "$UPSTREAM" = 1 ]; then
    for pair in $UPSTREAM_TAGS; do
      src=localhost/${pair%%=*} dst=${pair#*=}
      if [ "$(owner "${dst#localhost/}" "$src")" = foreign ]; then
        log "${dst#localhost/} is already present locally; not tagging $src as it"
      else
        podman tag "$src" "$dst"
      fi
    done
  fi
fi
podman images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^localhost/' >&2 || true
