"""Solution files: what training writes loads back; anything damaged is refused clearly."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zipfile

import numpy as np
import orjson
import pytest
from conftest import EXAMPLES, PBATCH, npz_arrays, write_npz

from personalize_batch.errors import SolutionError
from personalize_batch.solution import FORMAT_VERSION, load


def _rewrite(src, dst, **changes) -> None:
    arrays = npz_arrays(src)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    write_npz(dst, arrays)


def test_roundtrip_and_describe(solutions):
    for recipe, path in solutions.items():
        sol = load(str(path))
        assert sol.recipe == recipe
        d = sol.describe()
        assert d["formatVersion"] == FORMAT_VERSION
        assert d["training"]["interactionsUsed"] == 10025
        assert d["training"]["users"] == 801 and d["training"]["items"] == 3114
        assert len(d["sha256"]) == 64
        assert isinstance(d["hyperparameters"], dict)


def test_solution_holds_no_pickle(solutions):
    for path in solutions.values():
        for name, arr in npz_arrays(path).items():
            assert not arr.dtype.hasobject, name


@pytest.mark.parametrize("cut", [0, 10, 100, 1000, -100, -1])
def test_truncated_file_is_refused(solutions, tmp_path, cut):
    data = solutions["sims"].read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[:cut] if cut else b"")
    with pytest.raises(SolutionError, match="not a readable solution|not a pbatch solution"):
        load(str(bad))


def test_wrong_version(solutions, tmp_path):
    bad = tmp_path / "v99.npz"
    _rewrite(solutions["popularity-count"], bad, format_version=np.array(99))
    with pytest.raises(SolutionError, match="format 99 is not supported"):
        load(str(bad))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"item_counts": np.zeros(3, dtype=np.int64)}, "item_counts has 3 entries"),
        ({"seen_indptr": np.zeros(5, dtype=np.int64)}, "seen matrix"),
        ({"sims_indices": None}, "'sims_indices' is missing"),
        ({"sims_data": np.array([np.nan] * 10, dtype=np.float32)}, "wrong length|NaN"),
        ({"item_ids": np.array([[1, 2]])}, "'item_ids' has dtype"),
        ({"meta": np.array("{not json")}, "bad meta"),
    ],
)
def test_wrong_shapes_and_values(solutions, tmp_path, change, message):
    bad = tmp_path / "bad.npz"
    _rewrite(solutions["sims"], bad, **change)
    with pytest.raises(SolutionError, match=message):
        load(str(bad))


def test_out_of_range_and_non_finite(solutions, tmp_path):
    arrays = npz_arrays(solutions["sims"])
    idx = arrays["sims_indices"].copy()
    idx[0] = len(arrays["item_ids"])
    bad = tmp_path / "range.npz"
    _rewrite(solutions["sims"], bad, sims_indices=idx)
    with pytest.raises(SolutionError, match="out of range"):
        load(str(bad))
    data = arrays["sims_data"].copy()
    data[0] = np.inf
    _rewrite(solutions["sims"], bad, sims_data=data)
    with pytest.raises(SolutionError, match="NaN or infinite"):
        load(str(bad))


def test_not_a_solution(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(SolutionError, match="not a pbatch solution"):
        load(str(other))
    with pytest.raises(SolutionError, match="not found"):
        load(str(tmp_path / "missing.npz"))
    with pytest.raises(SolutionError, match="directory"):
        load(str(tmp_path))


def test_cli_bad_solution_is_one_line_exit_1(solutions, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(solutions["sims"].read_bytes()[:500])
    for args in (["describe", str(bad)], ["recommend", "-s", str(bad), "--item-id", "1"]):
        proc = subprocess.run([*PBATCH, *args], capture_output=True, text=True)
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert proc.stderr.startswith("pbatch: error: ") and proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr


def test_describe_prints_json(solutions, tmp_path):
    copy = tmp_path / "m.npz"
    shutil.copy(solutions["sims"], copy)
    proc = subprocess.run(
        [*PBATCH, "describe", str(copy)],
        capture_output=True,
        text=True,
        check=True,
    )
    d = orjson.loads(proc.stdout)
    assert d["recipe"] == "sims"
    assert d["hyperparameters"]["popularity_discount_factor"] == 0.5
    assert d["hyperparameters"]["min_cointeraction_count"] == 3


def test_an_s3_solution_loads_like_the_local_file(solutions, s3_env, s3_client, s3_bucket):
    path = solutions["sims"]
    s3_client.upload_file(str(path), s3_bucket, "models/sims.npz")
    s3_client.put_object(Bucket=s3_bucket, Key="models/bad.npz", Body=b"PK\x03\x04 not a zip")
    local, remote = load(str(path)), load(f"s3://{s3_bucket}/models/sims.npz")
    assert remote.path == f"s3://{s3_bucket}/models/sims.npz"
    assert (remote.recipe, remote.sha256) == (local.recipe, local.sha256)
    assert remote.arrays.keys() == local.arrays.keys()
    for name, arr in local.arrays.items():
        np.testing.assert_array_equal(remote.arrays[name], arr, err_msg=name)
    with pytest.raises(SolutionError, match=rf"^s3://{s3_bucket}/models/bad.npz: not a readable"):
        load(f"s3://{s3_bucket}/models/bad.npz")


def _data_offsets(path) -> dict[str, int]:
    """Where each member's array data starts in the file, read from the zip's own
    headers and the .npy header (independently of the loader)."""
    raw = path.read_bytes()
    out = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            at = info.header_offset
            assert raw[at : at + 4] == b"PK\x03\x04"
            name_length, extra_length = struct.unpack_from("<HH", raw, at + 26)
            start = at + 30 + name_length + extra_length
            member = io.BytesIO(raw[start : start + info.file_size])
            version = np.lib.format.read_magic(member)
            read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            read(member)
            out[info.filename[: -len(".npy")]] = start + member.tell()
    return out


def test_arrays_are_aligned_and_used_in_place(solutions, tmp_path):
    """Training writes every array's data on a 64-byte boundary, and loading uses the
    arrays where they lie in the file: read-only views, equal to what np.load reads."""
    for recipe, path in solutions.items():
        offsets = _data_offsets(path)
        assert offsets and all(at % 64 == 0 for at in offsets.values()), (recipe, offsets)
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None
        sol = load(str(path))
        want = npz_arrays(path)
        assert sol.arrays.keys() == want.keys()
        for name, arr in sol.arrays.items():
            assert arr.dtype == want[name].dtype, name
            np.testing.assert_array_equal(arr, want[name], err_msg=name)
            assert not arr.flags.writeable and not arr.flags.owndata, (recipe, name)


def test_an_np_savez_file_loads_and_answers_the_same(solutions, tmp_path):
    """np.savez does not align members: those off their dtype's alignment are read into
    memory, and a job gives the same bytes as with the aligned file."""
    path = solutions["user-personalization"]
    plain = tmp_path / "plain.npz"
    _rewrite(path, plain)
    assert any(at % 64 for at in _data_offsets(plain).values())
    sol = load(str(plain))  # what cannot be used in place is read (writeable copies)
    assert any(arr.flags.writeable for arr in sol.arrays.values())
    outs = []
    for model in (path, plain):
        folder = tmp_path / model.stem
        subprocess.run(
            [*PBATCH, "run", "-s", str(model), "-q"]
            + ["-i", str(EXAMPLES / "users.json"), "-o", str(folder), "--workers", "1"],
            check=True,
        )
        outs.append((folder / "users.json.out").read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") > 10


def test_damaged_array_data_is_refused(solutions, tmp_path):
    """One flipped bit in the middle of an aligned array fails its CRC-32."""
    path = solutions["user-personalization"]
    offsets = _data_offsets(path)
    data = bytearray(path.read_bytes())
    data[offsets["up_im_data"] + 5] ^= 0x10
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(SolutionError, match=r"not a readable solution.*(CRC|up_im_data)"):
        load(str(bad))


def test_a_loaded_solution_keeps_its_arrays_when_training_replaces_the_file(tmp_path):
    """`pbatch train -o` over the file of a loaded (mapped) solution renames a new file
    into place: the loaded arrays keep the old file's values."""
    from personalize_batch.training import train

    model = tmp_path / "model.npz"
    train("popularity-count", str(EXAMPLES / "interactions.csv"), str(model))
    before = load(str(model))
    kept = {name: arr.copy() for name, arr in before.arrays.items()}
    fewer = tmp_path / "fewer.csv"
    lines = (EXAMPLES / "interactions.csv").read_text().splitlines(keepends=True)
    fewer.write_text("".join(lines[:200]))
    train("popularity-count", str(fewer), str(model))
    after = load(str(model))
    assert not np.array_equal(after.arrays["item_counts"], kept["item_counts"])
    for name, arr in kept.items():
        np.testing.assert_array_equal(before.arrays[name], arr, err_msg=name)
