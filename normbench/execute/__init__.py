"""Planning and executing (variant, seed) tasks: in-process, workers or Dask; resume, merge."""
