"""The long-running service: its state and its lifecycle."""
