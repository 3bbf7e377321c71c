"""The long-running service: its runs manager, its state and HTTP serving (wired in
entrypoints.serve)."""
