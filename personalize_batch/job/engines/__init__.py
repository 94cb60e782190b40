"""Engines that run a batch inference job somewhere other than this one process tree.

`dask` runs it on a Dask cluster (A.14); `parts` holds the partition outputs it writes and
joins them into each `NAME.out`. This module itself imports nothing heavy.
"""

DEFAULT_PARTITION_SIZE = 4 << 20  # bytes of input per Dask task: a minute or two of work
