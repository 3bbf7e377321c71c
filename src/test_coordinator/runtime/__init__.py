"""The scenario engine's runtime: local processes, probes, polling, metrics and load.

Import from the submodules (``runtime.processes``, ``runtime.probes``,
``runtime.polling``, ``runtime.load``, ``runtime.metrics_scrape``,
``runtime.ports_alloc``); this package imports nothing itself, so that the CLI
can use one part without paying for httpx or gRPC.
"""
