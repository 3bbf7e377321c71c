"""The ``process`` backend: services as local processes in their own process groups."""
