"""Damaged solution files (A.2): every truncation, random bit flips, crafted bad arrays.

Each is refused with one SolutionError, or – when the damage missed every byte that
matters (a zip timestamp, say) – loads arrays identical to the original. Never a crash,
never a solution that answers differently.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import PBATCH, npz_arrays, write_npz
from faultkit import load_or_reason, solution_variants, tiny_solutions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_batch.errors import SolutionError
from personalize_batch.solution import load

RECIPES = ("popularity-count", "user-personalization", "sims", "personalized-ranking")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four recipes trained on a 60-row CSV: 4–9 KB files, cheap to damage."""
    return tiny_solutions(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_truncation_is_refused(tiny, tmp_path, recipe) -> None:
    bad = tmp_path / "cut.npz"
    bad.write_bytes(tiny[recipe].read_bytes())
    for length in reversed(range(bad.stat().st_size)):
        os.truncate(bad, length)  # rewriting the file each time costs 3 ms on ext4
        with pytest.raises(SolutionError, match="not a readable solution|not a pbatch solution"):
            load(str(bad))


def test_shrunk_npy_header_is_refused_by_its_crc(tiny, tmp_path) -> None:
    """One bit turns `'<U2'` into `'<U0'`: numpy then reads fewer bytes than the member
    holds, so zipfile never reaches its end and never checks its CRC-32. The loader reads
    every member to its end: the damage is named, not left to the shape checks."""
    data = bytearray(tiny["popularity-count"].read_bytes())
    start = data.index(b"item_ids.npy")
    spot = data.index(b"'<U2'", start)  # ids i0..i9
    data[spot + 3] ^= 0x02
    bad = tmp_path / "shrunk.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(SolutionError, match=r"damaged.*item_ids\.npy"):
        load(str(bad))


def test_a_directory_entry_that_swallows_the_next_ones_is_refused(tiny, tmp_path) -> None:
    """One bit of an entry's comment length makes zipfile skip the entries after it
    (it walks the directory by size): the solution then loaded without its event
    arrays. The directory's count is held against the end record's."""
    data = bytearray(tiny["user-personalization"].read_bytes())
    entry = data.rindex(b"PK\x01\x02", 0, data.rindex(b"PK\x01\x02"))  # the last but one
    data[entry + 33] ^= 0x02  # comment length += 512
    bad = tmp_path / "swallowed.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(SolutionError, match="damaged: its directory lists"):
        load(str(bad))


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    recipe=st.sampled_from(RECIPES),
    flips=st.lists(st.integers(min_value=0), min_size=1, max_size=3),
)
def test_bit_flips_are_refused_or_harmless(tiny, tmp_path, recipe, flips) -> None:
    data = bytearray(tiny[recipe].read_bytes())
    for flip in flips:
        bit = flip % (len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    outcome = load_or_reason(bad, npz_arrays(tiny[recipe]))
    assert outcome in ("refused", "loaded identical arrays"), outcome


def test_random_byte_garbage_is_refused(tiny, tmp_path) -> None:
    rng = random.Random(7)
    bad = tmp_path / "garbage.npz"
    for size in (1, 22, 100, 5000):
        bad.write_bytes(rng.randbytes(size))
        with pytest.raises(SolutionError):
            load(str(bad))
    bad.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    with pytest.raises(SolutionError, match="not a pbatch solution"):
        load(str(bad))


FLOAT_ARRAYS = ("up_nb_data", "up_trans_data", "up_prior")
VARIANTS = [
    *(
        "version-0 version-future version-huge version-string version-float version-vector "
        "meta-list meta-null meta-recipe meta-hp meta-bytes items-short items-negative "
        "prior-long indptr-short indptr-start indptr-decreasing index-too-big index-negative "
        "index-uint64 data-short history-user-rows ids-duplicate ids-2d ids-int data-complex "
        "data-bool missing-array"
    ).split(),
    *(f"{name}-{label}" for name in FLOAT_ARRAYS for label in ("nan", "inf", "-inf")),
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_crafted_bad_arrays_are_refused(tiny, tmp_path, variant) -> None:
    arrays = npz_arrays(tiny["user-personalization"])
    changes, word = solution_variants(arrays)[variant]
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    bad = tmp_path / f"{variant}.npz"
    write_npz(bad, arrays)
    with pytest.raises(SolutionError, match=word):
        load(str(bad))


@pytest.mark.parametrize("name", ["user_ids", "meta", "seen_indices", "format_version"])
def test_object_array_is_refused_without_unpickling(tiny, tmp_path, name) -> None:
    """A pickled member is refused before numpy would unpickle it (a pickle that would
    write a marker file if it ever ran)."""
    marker = tmp_path / "pwned"
    arrays = npz_arrays(tiny["popularity-count"])
    arrays[name] = np.array([_Evil(str(marker)), "x"], dtype=object)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for key, arr in arrays.items():
            member = io.BytesIO()
            np.save(member, arr, allow_pickle=True)
            z.writestr(key + ".npy", member.getvalue())
    bad = tmp_path / "pickle.npz"
    bad.write_bytes(buf.getvalue())
    with pytest.raises(SolutionError, match="object array"):
        load(str(bad))
    assert not marker.exists()


class _Evil:
    """Unpickling this touches a file: proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def test_cli_refuses_damaged_solutions_in_one_line(tiny, tmp_path) -> None:
    data = bytearray(tiny["sims"].read_bytes())
    cases = {"truncated": bytes(data[: len(data) // 2])}
    data[len(data) // 3] ^= 0x10
    cases["flipped"] = bytes(data)
    for name, body in cases.items():
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(body)
        proc = subprocess.run(
            [*PBATCH, "describe", str(bad)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1, (name, proc.stderr)
        assert proc.stdout == ""
        assert proc.stderr.startswith("pbatch: error: ") and proc.stderr.count("\n") == 1, name
