"""Runs through the service: submitted, queued, leased, run, watched, cancelled, remembered."""
