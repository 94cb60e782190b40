"""The solution file: one `.npz` of plain numpy arrays, never pickle (A.2).

Keys: `format_version` (int), `meta` (a JSON string: recipe, hyperparameters, training
metadata, metrics), `user_ids` and `item_ids` (unicode arrays), `item_counts`,
`seen_indptr`/`seen_indices` (CSR parts of the user x item training matrix), and the
recipe's own arrays. Loading checks everything – version, recipe, keys, dtypes, shapes,
index ranges, finite values – and turns any damage into one SolutionError.

Saving aligns every member's array data on 64 bytes, and loading maps the file and uses
the arrays where they lie (read-only), after checking each member's CRC-32; a solution
is therefore replaced by renaming a new file over it, never rewritten in place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import math
import mmap
import os
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import orjson

from . import recipes, storage
from .data.ids import IdIndex, increasing
from .errors import PbatchError, SolutionError, StorageError
from .recipes.numeric import csr_rows, seen_arrays
from .version import __version__

if TYPE_CHECKING:
    import scipy.sparse as sp

    from .data import Interactions

# 2: the user model gained its item-item model (up_im_*), and its hyperparameters
# changed meaning; a format-1 solution is refused with "retrain it".
FORMAT_VERSION = 2

# every solution's arrays: name -> (dtype kinds allowed, ndim); "U" unicode, "i" signed
# int, "f" float. The recipe's own arrays are its declaration's (recipes.protocol.Arrays).
COMMON = {
    "format_version": ("i", 0),
    "meta": ("U", 0),
    "user_ids": ("U", 1),
    "item_ids": ("U", 1),
    "item_counts": ("i", 1),
    "seen_indptr": ("i", 1),
    "seen_indices": ("i", 1),
}
# optional: filter data (per event type and user, the items interacted with); all or none
EVENTS = {"events_types": ("U", 1), "events_indptr": ("i", 1), "events_indices": ("i", 1)}
ITEM_FIELD_PREFIX = "items_"  # optional: items CSV columns, one unicode entry per item
# CSR triples to check: (indptr, indices, data or None, rows, cols) with rows/cols as
# "users", "items" or "events" (event types x users)
CSR = {
    "seen": ("seen_indptr", "seen_indices", None, "users", "items"),
    "events": ("events_indptr", "events_indices", None, "events", "items"),
}
PER_ITEM = ("item_counts",)


def model_arrays(
    recipe: str,
    data: Interactions,
    hp: dict[str, Any],
    *,
    seed: int = 0,
    cache: dict | None = None,
) -> dict[str, np.ndarray]:
    """What a recipe's scorer reads: its own fitted arrays, the id maps, the item counts
    and the seen-items matrix (a solution without item metadata or filter data)."""
    arrays = recipes.recipe(recipe).fit(data, hp, seed=seed, cache=cache)
    arrays.update(
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        item_counts=np.bincount(data.items, minlength=data.n_items).astype(np.int64),
        **seen_arrays(data.users, data.items, data.n_users, data.n_items),
    )
    return arrays


@dataclass
class Solution:
    """A loaded, validated solution."""

    path: str
    recipe: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    sha256: str = ""
    _user_index: IdIndex | None = field(default=None, repr=False)
    _item_index: IdIndex | None = field(default=None, repr=False)
    _scorer: Any = field(default=None, repr=False)

    @property
    def user_ids(self) -> np.ndarray:
        return self.arrays["user_ids"]

    @property
    def item_ids(self) -> np.ndarray:
        return self.arrays["item_ids"]

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.meta["hyperparameters"]

    @property
    def user_index(self) -> IdIndex:
        if self._user_index is None:
            self._user_index = IdIndex(self.user_ids)
        return self._user_index

    @property
    def item_index(self) -> IdIndex:
        if self._item_index is None:
            self._item_index = IdIndex(self.item_ids)
        return self._item_index

    def build_indexes(self, users: bool, items: bool) -> None:
        """Build the id indexes a job will look ids up in, before it forks its workers:
        they then share them, where each would otherwise build its own."""
        if users:
            self.user_index  # noqa: B018  (the property builds it)
        if items:
            self.item_index  # noqa: B018

    def scorer(self) -> Any:
        """The recipe's scorer for this solution, made once (what it derives from the
        arrays, such as a popularity order's offsets, serves every later job or query)."""
        if self._scorer is None:
            self._scorer = recipes.recipe(self.recipe).scorer(self)
        return self._scorer

    def seen_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """The training items of each user (unknown users: none)."""
        return csr_rows(
            self.arrays["seen_indptr"], self.arrays["seen_indices"], users, len(self.item_ids)
        )

    def describe(self) -> dict[str, Any]:
        """What `pbatch describe` prints: the metadata, then item fields and filter data."""
        from .recipes.catalogue import describe_items  # noqa: PLC0415

        own = recipes.recipe(self.recipe).describe
        return {
            "solution": self.path,
            "sha256": self.sha256,
            "formatVersion": FORMAT_VERSION,
            "recipe": self.recipe,
            **{k: v for k, v in self.meta.items() if k != "recipe"},
            **(own(self.arrays) if own is not None else {}),
            **describe_items(self.arrays, self.meta),
        }


def tuning_summary(meta: dict[str, Any]) -> dict[str, Any] | None:
    """What `pbatch train` chose for a solution, in short (for job records and the
    console); None for a solution trained with --no-tune."""
    tuning = meta.get("tuning")
    if tuning is None:
        return None
    if not tuning.get("searched"):
        return {"searched": False, "reason": tuning.get("reason", "")}
    metric = tuning["objective"]["metricName"]
    return {
        "searched": True,
        "validation": tuning["split"]["split"],
        "chosen": tuning["chosen"],
        "metricName": metric,
        "chosenValue": tuning["validation"]["chosen"][metric],
        "defaultsValue": tuning["validation"]["defaults"][metric],
    }


def build_meta(recipe: str, hp: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """The JSON metadata stored in a solution."""
    return {
        "recipe": recipe,
        "hyperparameters": hp,
        "training": {
            **training,
            "createdAt": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pbatchVersion": __version__,
        },
        "metrics": {},
    }


def save(path: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write a solution atomically (temp file in the same folder, then rename)."""
    payload = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "meta": np.array(orjson.dumps(meta).decode()),
        **arrays,
    }
    for name, arr in payload.items():
        if arr.dtype.hasobject:
            raise ValueError(f"{name} is an object array; solutions hold plain arrays only")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".solution.", suffix=".npz", dir=folder)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # an ordinary new file (mkstemp gives 0600)
        with os.fdopen(fd, "wb") as f:
            _write_aligned(f, payload)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a file size limit, -o a folder: nothing replaced
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# Every member's array data starts at a multiple of this many bytes in the file, so a
# loader can map the file and use the arrays where they lie (see _read_arrays).
ALIGN = 64
# the extra field that pads a member's local header to ALIGN (an id no zip tool assigns
# a meaning to; readers skip extra fields they do not know)
PAD_FIELD = 0x7062  # "pb"


def _write_aligned(f: IO[bytes], payload: dict[str, np.ndarray]) -> None:
    """An uncompressed `.npz`, as np.savez writes it, except that each member's local
    header carries a padding field that puts its array data on an ALIGN boundary.

    The `.npy` header numpy writes is itself a multiple of 64 bytes, so aligning the
    start of a member's data aligns its array. np.load and every zip tool read the file
    as they read np.savez's.
    """
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, arr in payload.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=time.localtime()[:6])
            info.extra = struct.pack("<HH", PAD_FIELD, 0)
            info.CRC = info.compress_size = 0  # as zipfile sets them before the header
            # where the data would start: this member's local header goes at f.tell(),
            # and its length counts the zip64 sizes that force_zip64 adds below
            pad = -(f.tell() + len(info.FileHeader(zip64=True))) % ALIGN
            info.extra = struct.pack("<HH", PAD_FIELD, pad) + bytes(pad)
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def in_memory(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Solution:
    """A solution that was just fitted, never written (for evaluation): not re-validated."""
    return Solution(
        path="(in memory)", recipe=recipes.canonical(meta["recipe"]), meta=meta, arrays=arrays
    )


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path: str, endpoint_url: str | None = None) -> Solution:
    """Load and validate a solution (a local path or an s3:// URL); any problem is one
    SolutionError, or a StorageError when an s3:// solution cannot be read."""
    if storage.is_s3(path):
        return _load_s3(path, endpoint_url)
    if not os.path.exists(path):
        raise SolutionError(f"solution not found: {path}")
    if os.path.isdir(path):
        raise SolutionError(f"solution {path} is a directory, not a .npz file")
    try:
        f = open(path, "rb")  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise SolutionError(f"{path}: not a readable solution file ({exc.strerror})") from None
    hashed: list[str] = []
    with f:
        view = _map(f)
        # the hash of the bytes loaded, on another core meanwhile (hashlib releases the
        # GIL): a tenth of a second per 100 MB that start-up no longer waits for. From
        # the mapping, it is the hash of the very file the arrays are read from.
        hasher = threading.Thread(
            target=lambda: hashed.append(
                hashlib.sha256(view).hexdigest() if view is not None else _file_sha256(path)
            ),
            daemon=True,
        )
        hasher.start()
        try:
            sol = _validate(path, _read_arrays(path, f, view))
        finally:
            hasher.join()
    sol.sha256 = hashed[0] if hashed else _file_sha256(path)  # a failure raised here
    return sol


def read_recipe(path: str, endpoint_url: str | None = None) -> str | None:
    """The recipe a solution file names, read from its metadata member alone: a quick
    look before a job is recorded (`load` validates everything). On S3, ranged reads of
    the archive's directory and that member, not the whole object. None when it cannot
    be read so (the job then reports why, once it loads the solution)."""
    if not storage.is_s3(path) and not os.path.isfile(path):
        return None
    try:
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(
                storage.open_input(path, endpoint_url) if storage.is_s3(path) else open(path, "rb")
            )
            z = stack.enter_context(zipfile.ZipFile(source))
            f = stack.enter_context(z.open("meta.npy"))
            meta = orjson.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
        return recipes.canonical(meta["recipe"])
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError, PbatchError):
        return None  # orjson's JSONDecodeError is a ValueError; StorageError a PbatchError


def _load_s3(url: str, endpoint_url: str | None) -> Solution:
    """Download an s3:// solution to a temporary file, load it and delete the file (the
    arrays are read into memory); the Solution keeps the URL as its path."""
    with tempfile.TemporaryDirectory(prefix="pbatch-solution-") as folder:
        local = os.path.join(folder, "solution.npz")
        storage.download(url, local, endpoint_url)
        try:
            sol = load(local)
        except SolutionError as exc:
            raise SolutionError(str(exc).replace(local, url)) from None
    sol.path = url
    return sol


def _read_arrays(path: str, f: IO[bytes], view: memoryview | None) -> dict[str, np.ndarray]:
    """Every `.npy` member of the archive: a read-only view of the mapped file (`view`,
    None where the file could not be mapped) where the member passes _mapped_array's
    checks, else read to its end by zipfile.

    Mapping shares the file's page cache between a job's workers and between jobs, and a
    job starts without copying the solution. Reading to the end is what makes zipfile
    check the member's CRC-32: np.load stops after the bytes the .npy header announces,
    so one flipped bit in a header (`'<U7'` -> `'<U3'`, a shape digit) loaded different
    arrays without a complaint. Any failure of zipfile or numpy on damaged bytes (they
    raise a dozen exception types) becomes one SolutionError.
    """
    arrays = {}
    try:
        with zipfile.ZipFile(f) as archive:
            _check_entry_count(path, f, len(archive.infolist()))
            for info in archive.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise SolutionError(f"{path}: not a pbatch solution (it holds {name!r})")
                arr = None if view is None else _mapped_array(view, info)
                if arr is not None:
                    arrays[name[: -len(".npy")]] = arr
                    continue
                with archive.open(info) as member:
                    arrays[name[: -len(".npy")]] = np.lib.format.read_array(
                        member, allow_pickle=False
                    )
                    if member.read(1):
                        raise SolutionError(
                            f"{path}: not a readable solution file (damaged: {name} holds"
                            " more bytes than its header announces)"
                        )
    except SolutionError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise SolutionError(
                f"{path}: holds an object array (pickled data); refusing to load it"
            ) from None
        raise SolutionError(
            f"{path}: not a readable solution file (damaged or truncated: {exc})"
        ) from None
    except zipfile.BadZipFile as exc:
        raise SolutionError(
            f"{path}: not a readable solution file (damaged or truncated: {exc})"
        ) from None
    except Exception as exc:  # noqa: BLE001  (damaged bytes: any decoding failure)
        raise SolutionError(
            f"{path}: not a readable solution file (damaged or truncated: {type(exc).__name__})"
        ) from None
    return arrays


# the end of central directory record: signature, 4 shorts (disks, entries on this
# disk, entries in all), 2 longs (directory size and offset), comment length
END_RECORD = struct.Struct("<4s4H2LH")


def _check_entry_count(path: str, f: IO[bytes], listed: int) -> None:
    """The central directory lists as many members as its end record announces.

    zipfile walks the directory by its byte size, not its count: one flipped bit in an
    entry's comment length swallows the entries after it, and the archive then loads
    without them (a solution missing its optional arrays answered differently). A
    solution carries no archive comment, so its end record is its last 22 bytes; a
    count of 0xFFFF defers to the zip64 record, which zipfile checks itself.
    """
    f.seek(-END_RECORD.size, os.SEEK_END)
    sig, _, _, _, total, _, _, _ = END_RECORD.unpack(f.read(END_RECORD.size))
    if sig == zipfile.stringEndArchive and total != 0xFFFF and total != listed:
        raise SolutionError(
            f"{path}: not a readable solution file (damaged: its directory lists {listed} "
            f"of the {total} members its end record announces)"
        )


def _map(f: IO[bytes]) -> memoryview | None:
    """The whole file, mapped read-only (None where it cannot be: an empty file, say)."""
    try:
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError, AttributeError):
        return None


# the most of a member read to find its .npy header (numpy's are 64 to a few 100 bytes)
NPY_HEADER_MAX = 1 << 16


def _mapped_array(view: memoryview, info: zipfile.ZipInfo) -> np.ndarray | None:
    """A member's array as a view of the mapped file, or None when this cannot vouch for
    it: a compressed or encrypted member, a local header or a .npy header that does not
    add up, data off its dtype's alignment (np.savez does not align), or a CRC-32 that
    does not match. The caller then reads the member the ordinary way, which names
    whatever damage there is.
    """
    if (
        info.compress_type != zipfile.ZIP_STORED
        or info.flag_bits & 0x1
        or info.compress_size != info.file_size
    ):
        return None
    at = info.header_offset
    local = view[at : at + zipfile.sizeFileHeader]
    if len(local) < zipfile.sizeFileHeader:
        return None
    fields = struct.unpack(zipfile.structFileHeader, local)
    if fields[0] != zipfile.stringFileHeader:
        return None
    name_length, extra_length = fields[-2:]  # the local header's last two fields
    start = at + zipfile.sizeFileHeader + name_length + extra_length
    data = view[start : start + info.file_size]
    if len(data) != info.file_size:
        return None
    try:
        header = io.BytesIO(data[:NPY_HEADER_MAX])
        version = np.lib.format.read_magic(header)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(header)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(header)
        else:
            return None
    except Exception:  # noqa: BLE001  (damaged bytes: the ordinary way names the damage)
        return None
    offset = header.tell()
    count = math.prod(shape)
    if (
        dtype.hasobject
        or offset + count * dtype.itemsize != info.file_size
        or (start + offset) % dtype.alignment
        or zlib.crc32(data) != info.CRC
    ):
        return None
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def _fail(path: str, msg: str) -> SolutionError:
    return SolutionError(f"{path}: invalid solution: {msg}")


def _validate(path: str, arrays: dict[str, np.ndarray]) -> Solution:
    if "format_version" not in arrays or "meta" not in arrays:
        raise _fail(path, "no format_version/meta (not a pbatch solution)")
    version = arrays["format_version"]
    if version.shape != () or version.dtype.kind not in "iu":
        raise _fail(path, "format_version is not an integer")
    if int(version) != FORMAT_VERSION:
        raise SolutionError(
            f"{path}: solution format {int(version)} is not supported "
            f"(this pbatch {__version__} reads format {FORMAT_VERSION}); retrain it"
        )
    try:
        meta = orjson.loads(str(arrays["meta"]))
        recipe = recipes.canonical(meta["recipe"])
        hp = meta["hyperparameters"]
        if not isinstance(hp, dict):
            raise TypeError("hyperparameters is not an object")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise _fail(path, f"bad meta ({exc})") from None
    except PbatchError as exc:  # an unknown recipe name
        raise _fail(path, f"bad meta ({exc})") from None
    own = recipes.recipe(recipe).arrays
    expected = {**COMMON, **own.required}
    for optional in (EVENTS, own.optional):
        if any(name in arrays for name in optional):
            expected.update(optional)
    for name, (kinds, ndim) in expected.items():
        if name not in arrays:
            raise _fail(path, f"array {name!r} is missing")
        arr = arrays[name]
        if arr.dtype.kind not in kinds or arr.ndim != ndim:
            raise _fail(path, f"array {name!r} has dtype {arr.dtype} and {arr.ndim} dimensions")
    n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
    sizes = {"users": n_users, "items": n_items}
    if "events_types" in expected:
        sizes["events"] = len(arrays["events_types"]) * n_users
    for name, arr in arrays.items():
        if name.startswith(ITEM_FIELD_PREFIX) and (
            arr.dtype.kind != "U" or arr.shape != (n_items,)
        ):
            raise _fail(path, f"item field {name!r} is not one string per item")
    for name in (*PER_ITEM, *own.per_item):
        if name in expected and arrays[name].shape != (n_items,):
            raise _fail(path, f"{name} has {arrays[name].shape[0]} entries for {n_items} items")
    if (arrays["item_counts"] < 0).any():
        raise _fail(path, "item_counts has negative counts")
    for what, (ip, ix, dv, rows, cols) in {**CSR, **own.matrices}.items():
        if ip not in expected:
            continue
        indptr, indices = arrays[ip], arrays[ix]
        if len(indptr) != sizes[rows] + 1 or indptr[0] != 0 or indptr[-1] != len(indices):
            raise _fail(path, f"{what} matrix: {ip} does not match its shape")
        if (np.diff(indptr) < 0).any():
            raise _fail(path, f"{what} matrix: {ip} is not increasing")
        if len(indices) and (indices.min() < 0 or indices.max() >= sizes[cols]):
            raise _fail(path, f"{what} matrix: {ix} out of range")
        if dv is not None and len(arrays[dv]) != len(indices):
            raise _fail(path, f"{what} matrix: {dv} has the wrong length")
    for name, arr in arrays.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise _fail(path, f"array {name!r} has NaN or infinite values")
    # ids in increasing order (as training writes them) are distinct, and their index is
    # built when a job needs it (a job of item queries never looks up a user); others are
    # checked through their index, which is kept
    indexes: dict[str, IdIndex] = {}
    for name in ("user_ids", "item_ids"):
        ids = arrays[name]
        if not increasing(ids):
            indexes[name] = IdIndex(ids)
            if not indexes[name].distinct():
                raise _fail(path, "duplicate ids in user_ids or item_ids")
    return Solution(
        path=path,
        recipe=recipe,
        meta=meta,
        arrays=arrays,
        _user_index=indexes.get("user_ids"),
        _item_index=indexes.get("item_ids"),
    )
