"""Test-only seams compiled into the package (no-ops unless a test switches them on)."""
