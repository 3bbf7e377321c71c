"""Ports: the interfaces the application needs from the outside world.

Only adapters and infrastructure implement these; everything else depends on
them and never on a third-party client (prometheus_client, redis, SQLAlchemy).
"""
