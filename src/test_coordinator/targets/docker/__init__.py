"""The ``docker`` backend: services as containers, through the Docker Engine API.

Docker or Podman's Docker-compatible API, found from the environment
(``DOCKER_HOST``). See :mod:`test_coordinator.targets.docker.backend`.
"""
