"""The batch inference job, in the order a line meets it.

- `params`: the job's options (JobParams, AnswerOptions), checked and serialized once.
- `framing`, `reading`: input bytes -> lines, numbered chunks or blocks of whole lines.
- `lines`: a line -> a Request or an error line (the recipe's query), and back to bytes.
- `scoring`: a chunk of Requests -> answers through the recipe's scorer.
- `answering`: a chunk, a block, a whole stream or byte range, written in order.
- `engines/`: where chunks are answered (`local` worker processes, `dask`).
- `run`: the lifecycle (record, solution, engine, ACTIVE / CREATE FAILED), with
  `signals`, `progress`, `checkpoint` and `resume` for stops and restarts.
- `store`: the SQLite job records; `leftovers`: what stopped jobs leave behind.
- `preflight`, `validate`, `diagnostics`, `foldin`, `workers`, `process`: the checks
  before and after, fresh events, and the worker processes.

Nothing here imports `run` but the faces that start jobs (cli, service, console).
"""
