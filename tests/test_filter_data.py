"""What filters read from a solution (item fields, per-event-type interactions): written by
`train`, validated by `load`, shown by `describe`; and what a filtered job records."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EXAMPLES, npz_arrays, write_npz

from personalize_batch.errors import SolutionError, UsageError
from personalize_batch.job.exploration import Exploration
from personalize_batch.job.params import JobParams
from personalize_batch.job.run import run_job
from personalize_batch.job.store import FAILED, JobStore
from personalize_batch.solution import load
from personalize_batch.training import train


@pytest.fixture(scope="module")
def with_items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("with-items")
    items = folder / "items.csv"
    text = (EXAMPLES / "items.csv").read_text(encoding="utf-8").splitlines()
    rows = [text[0] + ",PRICE,CREATION_TIMESTAMP"]
    rows += [f"{line},{k % 7}.5,{1_360_000_000 + k}" for k, line in enumerate(text[1:])]
    rows.append("new-item,New (2014),Drama,,")
    items.write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = folder / "pop.npz"
    train("popularity-count", str(EXAMPLES / "interactions.csv"), str(path), items=str(items))
    return path


def test_describe_shows_item_fields_and_filter_data(with_items):
    d = load(str(with_items)).describe()
    fields = d["itemMetadata"]["fields"]
    assert fields["GENRES"] == {"type": "categorical", "itemsWithValue": 3111, "distinctValues": 24}
    assert fields["PRICE"] == {"type": "numeric", "itemsWithValue": 3114, "min": 0.5, "max": 6.5}
    assert fields["CREATION_TIMESTAMP"]["type"] == "numeric"
    assert d["itemMetadata"]["itemsWithoutInteractions"] == 1  # new-item
    assert d["filterData"] == {"eventTypes": ["rating"], "itemsPerUserAndEventType": 100}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"events_indptr": None}, "array 'events_indptr' is missing"),
        ({"events_indices": np.array([0, 99999], dtype=np.int32)}, "events matrix"),
        ({"events_types": np.array(["a", "b"])}, "events matrix: events_indptr does not match"),
        ({"items_GENRES": np.array(["x"])}, "item field 'items_GENRES' is not one string"),
        ({"items_PRICE": np.zeros(3115)}, "item field 'items_PRICE' is not one string"),
    ],
)
def test_damaged_filter_arrays_are_refused(with_items, tmp_path, change, message):
    arrays = npz_arrays(with_items)
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with pytest.raises(SolutionError, match=message):
        load(write_npz(tmp_path / "bad.npz", arrays))


def test_solution_without_filter_data_loads_and_asks_for_a_retrain(with_items, tmp_path):
    arrays = {k: v for k, v in npz_arrays(with_items).items() if not k.startswith("events_")}
    sol = load(write_npz(tmp_path / "old.npz", arrays))
    from personalize_batch.job.scoring import Answerer

    Answerer(sol, filter_expression='EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
    with pytest.raises(UsageError, match="no interaction data for filters; retrain"):
        Answerer(sol, filter_expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")')


def test_bad_creation_timestamp_stops_training(tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("ITEM_ID,CREATION_TIMESTAMP\n0770828,1360000000\n1300854,yesterday\n")
    from personalize_batch.errors import DataError

    with pytest.raises(DataError, match="line 3: CREATION_TIMESTAMP 'yesterday' is not whole"):
        train(
            "popularity-count",
            str(EXAMPLES / "interactions.csv"),
            str(tmp_path / "m.npz"),
            items=str(items),
        )


def test_job_records_the_filter_and_exploration(with_items, tmp_path, pbatch_home):
    store = JobStore()
    src = tmp_path / "in.json"
    src.write_text('{"userId": "653"}\n')
    expr = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")'
    params = JobParams(
        solution=str(with_items),
        input=str(src),
        job_name="filtered",
        filter_expression=expr,
        exploration=Exploration(0.25, 7.0, 3),
    )
    record = run_job(params, store)
    assert record["status"] == "ACTIVE"
    assert record["filterExpression"] == expr
    assert record["batchInferenceJobConfig"] == {
        "itemExplorationConfig": {"explorationWeight": "0.25", "explorationItemAgeCutOff": "7"}
    }
    # a field the solution lacks: a usage error, the job CREATE FAILED, no output
    bad = JobParams(
        solution=str(with_items),
        input=str(src),
        output=str(tmp_path / "out"),
        job_name="unknown-field",
        filter_expression='EXCLUDE ItemID WHERE Items.GENRE IN ("Drama")',
    )
    with pytest.raises(UsageError, match="no item field GENRE"):
        run_job(bad, store)
    failed = store.get("unknown-field")
    assert failed["status"] == FAILED and "no item field GENRE" in failed["failureReason"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # a syntax error: before the job exists
    with pytest.raises(UsageError, match="expected WHERE"):
        run_job(
            JobParams(
                str(with_items), str(src), job_name="syntax", filter_expression="EXCLUDE ItemID"
            ),
            store,
        )
    with pytest.raises(Exception, match="no job named 'syntax'"):
        store.get("syntax")
