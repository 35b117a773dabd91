"""Executing (variant, seed) tasks: in-process, worker processes or Dask; resume, shards, merge."""
