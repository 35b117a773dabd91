"""Planning and running (variant, seed) tasks in-process, in workers or on Dask; resume, merge."""
