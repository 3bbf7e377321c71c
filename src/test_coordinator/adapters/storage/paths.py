"""Where the embedded store lives inside an instance's data directory."""

SQLITE_FILE = "coordinator.db"
