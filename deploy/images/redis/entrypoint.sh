#!/bin/sh
# As the official redis image: `redis-server ARGS` listens on every address, protected mode off,
# so the other containers reach it.
if [ "$1" = redis-server ]; then
  shift
  exec redis-server --protected-mode no --bind 0.0.0.0 "$@"
fi
exec "$@"
