"""Demo application data for retentiond: the schema the shipped policy names and a seeder."""
