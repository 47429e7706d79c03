"""The long-running service: scheduler, systemd notify, signals, metrics, locks."""
