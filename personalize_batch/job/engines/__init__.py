"""Where a job's lines are answered: `local` (this machine's worker processes) and
`dask` (a Dask cluster, A.14; `parts` holds the partition outputs it writes and joins
into each `NAME.out`). Engines read the job's options and answer its lines through
job.answering; they never import the job's lifecycle (job.run), which calls them.
"""
