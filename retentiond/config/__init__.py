"""Configuration: read and validate retention.toml and the holds file (no I/O beyond reading them)."""
