"""Lab results, reconciliation, coverage and the knock-on-door lists.

The package's parts, each one concept:

* :mod:`~sampling.lab.register` imports the population register (CSV, XLSX,
  Parquet) into ``<data_dir>/register/register.parquet`` with each resident's
  keyed hash, and hands the risk flags to the binding core.
* :mod:`~sampling.lab.parse` reads lab results (lab CSV export, HL7 v2 ORU^R01,
  JSON); :mod:`~sampling.lab.results` stores them in Redis with ``record.lua``.
* :mod:`~sampling.lab.archive` turns the round's journal into ``results.parquet``.
* :mod:`~sampling.lab.sources` scans the archived Parquet lazily;
  :mod:`~sampling.lab.reconcile`, :mod:`~sampling.lab.coverage`,
  :mod:`~sampling.lab.doors` and :mod:`~sampling.lab.turnaround` are pure
  ``LazyFrame -> LazyFrame`` transforms over them.
* :mod:`~sampling.lab.cli` and :mod:`~sampling.lab.routes` are the edges that
  collect and print or serve.
"""
