"""``retentiond report``: what the ledger says was done, per category and month, after verifying it.

The package reads the audit ledger (and, when given, the configuration); it writes nothing to
either. Layers, each usable on its own:

* :mod:`~retentiond.report.source` opens the ledger named by a full or an auditor-only
  configuration, verifies it (one adapter function) and yields the verified entries;
* :mod:`~retentiond.report.aggregate` turns entries into a :class:`~retentiond.report.model.Report`
  (pure: no I/O, property-tested);
* :mod:`~retentiond.report.html` (with :mod:`~retentiond.report.charts`) and
  :mod:`~retentiond.report.tabular` render that one report as self-contained HTML, JSON or CSV,
  so the three carry the same figures.
"""
