"""Executing (variant, seed) tasks: in-process, local worker processes or Dask; resume, shards, merge."""
