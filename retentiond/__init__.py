"""retentiond: enforce data-retention promises on SQL tables and S3 buckets, with an audit ledger."""

__version__ = "0.1.0"
