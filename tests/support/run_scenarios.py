"""Library scenarios the runs-service tests submit: small, quick, and against Python's
http.server (a server the project did not write)."""

QUICK_RESTART = """
version: 1
name: quick-restart
ports: [web_port]
services:
  web:
    process:
      command: ${python}
      args: [-m, http.server, "${web_port}", --bind, 127.0.0.1]
      stop_grace: 2s
    health: {http: {url: "http://127.0.0.1:${web_port}/"}}
steps:
  - restart: web
checks:
  - recovery_time: {service: web, max: 20s}
"""

PAUSED_HTTP_SERVER = """
version: 1
name: slow
vars: {hold: 60s}
ports: [web_port]
services:
  web:
    process:
      command: ${python}
      args: [-m, http.server, "${web_port}", --bind, 127.0.0.1]
      stop_grace: 2s
    health: {http: {url: "http://127.0.0.1:${web_port}/"}}
steps:
  - pause: web
  - wait: ${hold}
"""
"""Pauses its server and holds it paused (``hold``) until cancelled or killed."""
