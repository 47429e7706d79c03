"""Pure decision logic: which holds are active, what is expired, what to do with a record.

Nothing in this package performs I/O; it is property-tested.
"""
