"""Stores: find and act on records in SQL databases and S3 buckets."""
