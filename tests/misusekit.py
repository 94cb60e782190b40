"""The misuse suite: what a user's own hands do wrong – options, paths, encodings, CSV
files – each with the exit code and the one line pbatch answers, and the promise that
no file the user had is changed. tests/test_misuse.py runs every case; RELIABILITY.md
has the table (regenerate it with `PBATCH_UPDATE_MISUSE=1 pytest tests/test_misuse.py`).

A case runs its command in a fresh workspace (WORKSPACE's files, solutions of the four
recipes trained on the bundled examples), its own job store, the workspace as working
directory. `{ws}` in a message stands for the workspace's absolute path.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
USERS = (EXAMPLES / "users.json").read_bytes()
ITEMS = (EXAMPLES / "items.json").read_bytes()
HEAD = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
ROWS = (EXAMPLES / "interactions.csv").read_text().splitlines()[1:200]
CSV = HEAD + "\n".join(ROWS) + "\n"


def _with_bad_byte() -> bytes:
    rows = CSV.encode().split(b"\n")
    rows[150] = rows[150].replace(b"rating", b"rat\xe9ing")
    return b"\n".join(rows)


def _with_milliseconds() -> str:
    rows = CSV.splitlines()
    user, item, ts, rest = rows[40].split(",", 3)
    rows[40] = f"{user},{item},{int(ts) * 1000},{rest}"
    return "\n".join(rows) + "\n"


# file -> bytes, written into every workspace besides the solutions
WORKSPACE: dict[str, bytes] = {
    "users.json": USERS,
    "items.json": ITEMS,
    "ranking.json": (EXAMPLES / "ranking.json").read_bytes(),
    "interactions.csv": CSV.encode(),
    "items.csv": (EXAMPLES / "items.csv").read_bytes(),
    "events.csv": (HEAD + "653,1670345,1700000000,rating,8\n").encode(),
    "filter.txt": b'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")\n',
    "notes.txt": b"my own notes\n",
    "batch/a.json": USERS,
    "batch/b.json": USERS[:40],
    "out/users.json.out": b'{"an older output": true}\n',
    "old.out": b'{"input":{"userId":"653"},"output":{"recommendedItems":["1"]},"error":null}\n',
    "new.out": b'{"input":{"userId":"653"},"output":{"recommendedItems":["2"]},"error":null}\n',
    "empty.json": b"",
    "blank.json": b"\n  \n\t\n",
    "utf16.json": codecs.BOM_UTF16_LE + USERS.decode().encode("utf-16-le"),
    "utf16-nobom.json": USERS.decode().encode("utf-16-le"),
    "utf32.json": USERS.decode().encode("utf-32"),
    "packed.json": gzip.compress(USERS, mtime=0),
    "utf16.csv": CSV.encode("utf-16"),
    "packed.csv": gzip.compress(CSV.encode(), mtime=0),
    "badbyte.csv": _with_bad_byte(),
    "ms.csv": _with_milliseconds().encode(),
    "empty.csv": b"",
    "header.csv": HEAD.encode(),
    "nouser.csv": b"ITEM_ID,TIMESTAMP\n1,2\n",
    "fields.csv": (HEAD + "653,1670345,1700000000\n").encode(),
    "badts.csv": (HEAD + "653,1670345,yesterday,rating,8\n").encode(),
    "notype.csv": b"USER_ID,ITEM_ID,TIMESTAMP\n653,1670345,1700000000\n",
    "items-dup.csv": b"ITEM_ID,GENRES\n1,A\n1,B\n",
    "items-ms.csv": b"ITEM_ID,CREATION_TIMESTAMP\n1,1700000000000\n",
}
SOLUTIONS = {
    "model.npz": "user-personalization",
    "sims.npz": "sims",
    "pop.npz": "popularity-count",
    "rank.npz": "personalized-ranking",
}


@dataclass(frozen=True)
class Case:
    """One misuse: the command as typed (after `pbatch`), the exit code and the one line
    on stderr (a warning for an input pbatch answers anyway, an error otherwise)."""

    kind: str
    name: str
    args: tuple[str, ...]
    exit: int
    message: str
    before: str | None = None  # a shell line run first in the workspace (links, a job)
    process: bool = False  # run as its own process (a limit, a signal)


def C(kind: str, name: str, command: str, exit: int, message: str, **kw: object) -> Case:
    import shlex

    return Case(kind, name, tuple(shlex.split(command)), exit, message, **kw)


RUN = "run -s model.npz -i users.json -o out"
NEVER = "pbatch never writes over a command's own inputs"
SEE_RUN = "(see 'pbatch run --help')"
CASES = [
    # ---------------------------------------------------------------- paths (A.18)
    C("path", "errors-to the job's input", f"{RUN} --errors-to users.json", 2,
      f"--errors-to users.json is the input users.json: {NEVER}; choose another path"),
    C("path", "errors-to the solution", f"{RUN} --errors-to model.npz", 2,
      f"--errors-to model.npz is the solution model.npz: {NEVER}; choose another path"),
    C("path", "errors-to the job's own output", f"{RUN} --errors-to out/users.json.out", 2,
      "the output out/users.json.out and --errors-to out/users.json.out are the same file: "
      "each output of a job needs its own path; choose another path"),
    C("path", "errors-to the events file", f"{RUN} --events events.csv --errors-to events.csv", 2,
      f"--errors-to events.csv is the --events file events.csv: {NEVER}; choose another path"),
    C("path", "errors-to the filter file",
      f"{RUN} --filter-file filter.txt --errors-to filter.txt", 2,
      f"--errors-to filter.txt is the --filter-file filter.txt: {NEVER}; choose another path"),
    C("path", "errors-to the input, spelt another way", f"{RUN} --errors-to ./out/../users.json",
      2, f"--errors-to ./out/../users.json is the input users.json: {NEVER}; choose another path"),
    C("path", "errors-to a hard link of the input", f"{RUN} --errors-to alias.json", 2,
      f"--errors-to alias.json is the input users.json: {NEVER}; choose another path",
      before="ln users.json alias.json"),
    C("path", "errors-to a symlink to the solution", f"{RUN} --errors-to link.npz", 2,
      f"--errors-to link.npz is the solution model.npz: {NEVER}; choose another path",
      before="ln -s model.npz link.npz"),
    C("path", "errors-to a file of the input folder",
      "run -s model.npz -i batch -o out --errors-to batch/b.json", 2,
      f"--errors-to batch/b.json is the input batch/b.json: {NEVER}; choose another path"),
    C("path", "errors-to a folder", f"{RUN} --errors-to batch", 2,
      "--errors-to batch is a folder; give a file name"),
    C("path", "errors-to and output both stdout",
      "run -s model.npz -i users.json -o - --errors-to -", 2,
      "--errors-to - and --output - are stdout: each output of a job needs its own path; "
      "choose another path"),
    C("path", "output a file, not a folder", "run -s model.npz -i users.json -o notes.txt", 2,
      "--output notes.txt is a file; it takes a folder, where each input NAME gives NAME.out"),
    C("path", "an output that is the solution", "run -s users.json.out -i users.json -o .", 2,
      f"the output ./users.json.out is the solution users.json.out: {NEVER}; choose another path",
      before="cp model.npz users.json.out"),
    C("path", "diff --changed over OLD", "diff old.out new.out --changed old.out", 2,
      f"--changed old.out is OLD.out old.out: {NEVER}; choose another --changed"),
    C("path", "diff --changed over NEW", "diff old.out new.out --changed ./new.out", 2,
      f"--changed ./new.out is NEW.out new.out: {NEVER}; choose another --changed"),
    C("path", "train -o its interactions",
      "train -r popularity-count -i interactions.csv -o interactions.csv", 2,
      f"-o interactions.csv is the --interactions file interactions.csv: {NEVER}; "
      "choose another -o"),
    C("path", "train -o its items",
      "train -r sims -i interactions.csv --items items.csv -o items.csv", 2,
      f"-o items.csv is the --items file items.csv: {NEVER}; choose another -o"),
    C("path", "train -o a file that is not a solution",
      "train -r popularity-count -i interactions.csv -o users.json", 2,
      "-o users.json exists and is not a pbatch solution; pbatch train replaces only "
      "solutions: remove it or choose another -o"),
    C("path", "train -o a hard link of its interactions",
      "train -r popularity-count -i interactions.csv -o copy.csv", 2,
      f"-o copy.csv is the --interactions file interactions.csv: {NEVER}; choose another -o",
      before="ln interactions.csv copy.csv"),
    C("path", "train -o an existing folder", "train -r popularity-count -i interactions.csv -o out",
      2, "-o out names a folder; give a file name, e.g. out/model.npz"),
    C("path", "train -o a new folder", "train -r popularity-count -i interactions.csv -o newdir/",
      2, "-o newdir/ names a folder; give a file name, e.g. newdir/model.npz"),
    C("path", "train -o in a missing folder",
      "train -r popularity-count -i interactions.csv -o nodir/m.npz", 2,
      "-o nodir/m.npz: folder nodir does not exist"),
    C("path", "train -o stdout", "train -r popularity-count -i interactions.csv -o -", 2,
      "-o -: a solution is a file (a zip), not a stream; give a file name"),
    C("path", "train -o an s3:// URL",
      "train -r popularity-count -i interactions.csv -o s3://bucket/m.npz", 2,
      "-o s3://bucket/m.npz: pbatch train writes a local file; copy it to S3 afterwards (run "
      "and the SDK read s3:// solutions)"),
    C("path", "a full disk while train writes",
      "train -r user-personalization -i interactions.csv -o new.npz -q", 1,
      "cannot write new.npz: File too large", process=True),
    # ---------------------------------------------------------------- options
    C("option", "num-results 0", "run -s model.npz -i users.json -n 0", 2,
      "Invalid value for '--num-results' / '-n': must be 1-500 (1-5,000,000 users per line "
      f"for a segment solution) {SEE_RUN}"),
    C("option", "num-results 501", "run -s model.npz -i users.json -n 501", 2,
      "--num-results must be 1-500 for a user-personalization solution, not 501 (only a "
      "segment solution takes more: up to 5,000,000 users per line)"),
    C("option", "num-results over 5,000,000", "run -s model.npz -i users.json -n 5000001", 2,
      "Invalid value for '--num-results' / '-n': must be 1-500 (1-5,000,000 users per line "
      f"for a segment solution) {SEE_RUN}"),
    C("option", "no --input", "run -s model.npz", 2, f"Missing option '--input' / '-i' {SEE_RUN}"),
    C("option", "a misspelt option", f"{RUN} --errors users.err", 2,
      "No such option '--errors'. (Did you mean one of: '--errors-to', '--skip-errors'?) "
      f"{SEE_RUN}"),
    C("option", "a misspelt command", "trian -r sims -i interactions.csv -o m.npz", 2,
      "No such command 'trian'. (Did you mean one of: 'rank', 'train'?) (see 'pbatch --help')"),
    C("option", "a job name with a space", f"{RUN} --job-name 'nightly run'", 2,
      "invalid job name 'nightly run': 1-63 letters, digits, '-' or '_', starting with a "
      "letter or digit"),
    C("option", "a job name of 64 characters", f"{RUN} --job-name {'x' * 64}", 2,
      f"invalid job name '{'x' * 64}': 1-63 letters, digits, '-' or '_', starting with a "
      "letter or digit"),
    C("option", "a job name in use", f"{RUN} -q --job-name nightly", 2,
      "a job named 'nightly' already exists (ACTIVE); choose another --job-name, or free the "
      "name with `pbatch jobs delete nightly`",
      before="pbatch run -s model.npz -i users.json -o done -q --job-name nightly"),
    C("option", "compress zip", f"{RUN} --compress zip", 2,
      "Invalid value for '--compress': 'zip' is not 'gzip' " + SEE_RUN),
    C("option", "workers 0", f"{RUN} --workers 0", 2,
      f"Invalid value for '--workers': 0 is not in the range 1<=x<=256 {SEE_RUN}"),
    C("option", "max-error-rate 2", f"{RUN} --max-error-rate 2", 2,
      f"Invalid value for '--max-error-rate': 2.0 is not in the range 0.0<=x<=1.0 {SEE_RUN}"),
    C("option", "scheduler without the dask engine", f"{RUN} --scheduler tcp://127.0.0.1:8786",
      2, "--scheduler needs --engine dask"),
    C("option", "the dask engine on stdin", "run -s model.npz -i - --engine dask", 2,
      "--engine dask reads files or s3:// inputs, not stdin"),
    C("option", "a filter that does not parse", f"{RUN} --filter 'INCLUDE ItemID WHERE'", 2,
      "--filter: at character 21: expected Items.FIELD or Interactions.FIELD, found the end of "
      "the filter\n  INCLUDE ItemID WHERE\n                      ^"),
    C("option", "a segment job's user filter on an inference job",
      f"{RUN} --filter 'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN (\"rating\")'", 2,
      "--filter: a UserID filter selects the users of a batch segment job, but a "
      "user-personalization solution answers items: filter them with INCLUDE or EXCLUDE "
      "ItemID WHERE ..."),
    C("option", "a filter on users data", f"{RUN} --filter 'EXCLUDE UserID WHERE Users.AGE > 30'",
      2, "--filter: at character 22: Users conditions need a users dataset, which pbatch does "
      "not have (it reads interactions and items only)"),
    C("option", "filter and filter-file", f"{RUN} --filter x --filter-file filter.txt", 2,
      f"give --filter or --filter-file, not both {SEE_RUN}"),
    C("option", "item metadata of a solution without items", f"{RUN} --item-metadata TITLE", 2,
      "--item-metadata: the solution has no items data: it was trained without an items CSV "
      "(train it with --items ITEMS.csv)"),
    C("option", "events with a sims solution",
      "run -s sims.npz -i items.json -o out --events events.csv", 2,
      "--events: sims does not take fresh events (train it again with them); fresh events "
      "change only user-personalization, personalized-ranking, popularity-count"),
    C("option", "exploration weight 2", f"{RUN} --exploration-weight 2", 2,
      f"Invalid value for '--exploration-weight': 2.0 is not in the range 0<=x<=1 {SEE_RUN}"),
    C("option", "resume with other options", "run --resume nightly -n 3", 2,
      "--resume continues a job with the options it was started with; not with --num-results "
      + SEE_RUN),
    C("option", "resume an unknown job", "run --resume nightly", 1,
      "no job named 'nightly'"),
    C("option", "an endpoint that is not a URL",
      "run -s model.npz -i s3://bucket/in.json --endpoint-url not-a-url", 2,
      "Invalid value for '--endpoint-url': S3 endpoint 'not-a-url' is not a URL: give "
      f"http://HOST[:PORT] or https://HOST[:PORT] {SEE_RUN}"),
    C("option", "an unknown recipe", "train -r deep-magic -i interactions.csv -o m.npz", 2,
      "unknown recipe 'deep-magic' (known: user-personalization, popularity-count, "
      "personalized-ranking, sims, trending-now, item-affinity, item-attribute-affinity)"),
    C("option", "a recipe name with a typo",
      "train -r aws-user-personalization-v2 -i interactions.csv -o m.npz", 2,
      "unknown recipe 'aws-user-personalization-v2', did you mean "
      "'aws-user-personalization'? (known: user-personalization, popularity-count, "
      "personalized-ranking, sims, trending-now, item-affinity, item-attribute-affinity)"),
    C("option", "item-attribute-affinity without --items",
      "train -r item-attribute-affinity -i interactions.csv -o m.npz", 2,
      "item-attribute-affinity needs --items ITEMS.csv: its lines are expressions over the "
      "item metadata (ITEMS.genres = ...)"),
    C("option", "an unknown hyperparameter", "train -r sims -i interactions.csv -o m.npz --hp x=1",
      2, "sims has no hyperparameter 'x' (known: popularity_discount_factor, "
      "min_cointeraction_count, min_user_history_length_percentile, "
      "max_user_history_length_percentile, min_item_interaction_count_percentile, "
      "max_item_interaction_count_percentile)"),
    C("option", "a hyperparameter out of range",
      "train -r sims -i interactions.csv -o m.npz --hp min_cointeraction_count=11", 2,
      "hyperparameter min_cointeraction_count must be in [0, 10], not 11"),
    C("option", "a hyperparameter without a value",
      "train -r sims -i interactions.csv -o m.npz --hp min_cointeraction_count", 2,
      "--hp takes key=value, not 'min_cointeraction_count'"),
    C("option", "an unknown split", "evaluate -r sims -i interactions.csv --split weekly", 2,
      "Invalid value for '--split': 'weekly' is not one of 'personalize', 'leave-last-out', "
      "'time-cut', 'random' (see 'pbatch evaluate --help')"),
    C("option", "prune without a unit", "jobs prune --older-than 30", 2,
      "--older-than takes a number and a unit (s, m, h, d, w), like 30d or 12h; not '30'"),
    C("option", "delete an unknown job", "jobs delete nightly", 1,
      "no job named 'nightly'"),
    C("option", "describe an unknown job", "jobs describe nightly", 1,
      "no job named 'nightly'"),
    C("option", "describe with nothing to describe", "describe", 2,
      "give a SOLUTION file or --recipe NAME (one of them) (see 'pbatch describe --help')"),
    C("option", "recommend without a user", "recommend -s model.npz", 2,
      "user-personalization: user-personalization needs \"userId\""),
    C("option", "rank with a sims solution", "rank -s sims.npz --user-id 653 --items 1,2", 2,
      "GetPersonalizedRanking needs a personalized-ranking solution; this one is sims (use "
      "GetRecommendations, `pbatch recommend`)"),
    C("option", "a solution that is not there", "run -s nope.npz -i users.json -o out", 1,
      "job pbatch-JOBNAME failed: solution not found: nope.npz"),
    C("option", "an input that is not there", "run -s model.npz -i nope.json -o out", 1,
      "job pbatch-JOBNAME failed: input not found: nope.json"),
    # ---------------------------------------------------------------- input encodings
    C("encoding", "a UTF-16 input", "run -s model.npz -i utf16.json -o out", 2,
      "utf16.json is UTF-16 text (it starts with a UTF-16 byte-order mark); pbatch reads UTF-8 "
      "JSON Lines (convert it first, e.g. iconv -f UTF-16 -t UTF-8)"),
    C("encoding", "a UTF-16 input without a byte-order mark",
      "run -s model.npz -i utf16-nobom.json -o out", 2,
      "utf16-nobom.json is not UTF-8 text: its first line holds NUL bytes (UTF-16 without a "
      "byte-order mark?); pbatch reads UTF-8 JSON Lines (convert it first, e.g. iconv -f "
      "UTF-16 -t UTF-8)"),
    C("encoding", "a UTF-32 input", "run -s model.npz -i utf32.json -o out", 2,
      "utf32.json is UTF-32 text (it starts with a UTF-32 byte-order mark); pbatch reads UTF-8 "
      "JSON Lines (convert it first, e.g. iconv -f UTF-16 -t UTF-8)"),
    C("encoding", "gzip data without its .gz", "run -s model.npz -i packed.json -o out", 2,
      "packed.json is gzip-compressed, but its name does not end in .gz; pbatch reads UTF-8 "
      "JSON Lines"),
    C("encoding", "a solution given as the input", "run -s model.npz -i sims.npz -o out", 2,
      "sims.npz is a zip file (a pbatch solution?); pbatch reads UTF-8 JSON Lines"),
    C("encoding", "a UTF-16 input to validate", "validate -s model.npz -i utf16.json", 2,
      "utf16.json is UTF-16 text (it starts with a UTF-16 byte-order mark); pbatch reads UTF-8 "
      "JSON Lines (convert it first, e.g. iconv -f UTF-16 -t UTF-8)"),
    C("encoding", "a users file given to a sims solution", "run -s sims.npz -i users.json -o out",
      2, 'the input does not fit the sims solution: none of the 20 lines of users.json has '
      '"itemId" (line 1: sims needs "itemId")'),
    C("encoding", "an items file given to a ranking solution",
      "run -s rank.npz -i items.json -o out", 2,
      'the input does not fit the personalized-ranking solution: none of the 12 lines of '
      'items.json has "userId" (line 1: personalized-ranking needs "userId")'),
    C("encoding", "an empty input", "run -s model.npz -i empty.json -o out -q", 0,
      "empty.json is empty: no line to answer"),
    C("encoding", "a blank-only input", "run -s model.npz -i blank.json -o out -q", 0,
      "blank.json holds only 3 blank lines: no line to answer"),
    # ---------------------------------------------------------------- CSV files
    C("csv", "a UTF-16 CSV", "train -r popularity-count -i utf16.csv -o m.npz", 1,
      "utf16.csv is UTF-16 text (it starts with a UTF-16 byte-order mark); pbatch reads UTF-8 "
      "CSV files"),
    C("csv", "gzip data without its .gz", "train -r popularity-count -i packed.csv -o m.npz", 1,
      "packed.csv is gzip-compressed, but its name does not end in .gz; pbatch reads UTF-8 CSV "
      "files"),
    C("csv", "a solution given as the CSV", "train -r popularity-count -i model.npz -o m.npz", 1,
      "model.npz is a zip file (a pbatch solution?); pbatch reads UTF-8 CSV files"),
    C("csv", "a byte that is not UTF-8", "train -r popularity-count -i badbyte.csv -o m.npz", 1,
      "badbyte.csv: line 151: byte 0xe9 at column 26 is not UTF-8; pbatch reads UTF-8 CSV "
      "files"),
    C("csv", "one timestamp in milliseconds", "train -r popularity-count -i ms.csv -o m.npz", 1,
      "ms.csv: line 41: TIMESTAMP 1367172793000 is not unix seconds: it looks like "
      "milliseconds (2013-04-28 UTC); Personalize's TIMESTAMP is whole seconds since 1970 "
      "(divide by 1,000)"),
    C("csv", "an empty CSV", "train -r popularity-count -i empty.csv -o m.npz", 1,
      "empty.csv: empty file (a header row is required)"),
    C("csv", "a header and no rows", "train -r popularity-count -i header.csv -o m.npz", 1,
      "header.csv: no interactions (a header row only)"),
    C("csv", "no USER_ID column", "train -r popularity-count -i nouser.csv -o m.npz", 1,
      "nouser.csv: line 1: the header has no USER_ID column"),
    C("csv", "a row with too few fields", "train -r popularity-count -i fields.csv -o m.npz", 1,
      "fields.csv: line 2: expected 5 fields, found 3"),
    C("csv", "a timestamp that is not a number",
      "train -r popularity-count -i badts.csv -o m.npz", 1,
      "badts.csv: line 2: TIMESTAMP 'yesterday' is not whole unix seconds"),
    C("csv", "an event type no row has",
      "train -r popularity-count -i interactions.csv -o m.npz --event-type click", 1,
      "interactions.csv: no interactions of event type 'click' (matched ignoring case); its "
      "event types: rating (199 rows)"),
    C("csv", "an event type without the column",
      "train -r popularity-count -i notype.csv -o m.npz --event-type click", 1,
      "notype.csv: --event-type needs an EVENT_TYPE column"),
    C("csv", "an item given twice in the items CSV",
      "train -r popularity-count -i interactions.csv --items items-dup.csv -o m.npz", 1,
      "items-dup.csv: line 3: ITEM_ID '1' appears twice"),
    C("csv", "a creation time in milliseconds",
      "train -r popularity-count -i interactions.csv --items items-ms.csv -o m.npz", 1,
      "items-ms.csv: line 2: CREATION_TIMESTAMP 1700000000000 is not unix seconds: it looks "
      "like milliseconds (2023-11-14 UTC); Personalize's CREATION_TIMESTAMP is whole seconds "
      "since 1970 (divide by 1,000)"),
    C("csv", "fresh events in milliseconds", f"{RUN} --events ms.csv", 1,
      "job pbatch-JOBNAME failed: ms.csv: line 41: TIMESTAMP 1367172793000 is not unix "
      "seconds: it looks like milliseconds (2013-04-28 UTC); Personalize's TIMESTAMP is "
      "whole seconds since 1970 (divide by 1,000)"),
]  # fmt: skip


def checksums(folder: Path) -> dict[str, str]:
    """Every file under `folder` (symlinks as their target's name) and its sha256."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_workspace(folder: Path, solutions: dict[str, Path]) -> Path:
    """A workspace: WORKSPACE's files and the four solutions."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in WORKSPACE.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for name, recipe in SOLUTIONS.items():
        shutil.copyfile(solutions[recipe], folder / name)
    return folder
