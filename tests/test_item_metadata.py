"""--item-metadata: item fields beside recommendedItems, one map per item (see
docs/reference.md), the same bytes for any number of workers."""

from __future__ import annotations

import orjson
import pytest
from conftest import EXAMPLE_INPUTS, EXAMPLES, RECIPES

from personalize_batch.errors import UsageError
from personalize_batch.job.params import JobParams, parse_item_fields
from personalize_batch.job.run import run_job
from personalize_batch.job.store import JobStore
from personalize_batch.service.runtime import AnswerOptions, get_personalized_ranking
from personalize_batch.solution import load
from personalize_batch.training import train


@pytest.fixture(scope="module")
def item_solutions(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("metadata-solutions")
    out = {}
    for recipe in RECIPES:
        out[recipe] = folder / f"{recipe}.npz"
        train(
            recipe,
            str(EXAMPLES / "interactions.csv"),
            str(out[recipe]),
            items=str(EXAMPLES / "items.csv"),
            tune=False,
        )
    return out


def _titles() -> dict[str, dict[str, str]]:
    rows = (EXAMPLES / "items.csv").read_text(encoding="utf-8").splitlines()[1:]
    out = {}
    for row in rows:
        item, rest = row.split(",", 1)
        title, genres = rest.rsplit(",", 1)
        out[item] = {"TITLE": title.strip('"').replace('""', '"'), "GENRES": genres}
    return out


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_item_gets_its_fields_in_order_same_bytes_for_any_workers(
    recipe, item_solutions, tmp_path
):
    src = EXAMPLES / EXAMPLE_INPUTS[recipe]
    outs = {}
    for workers in (1, 3):
        params = JobParams(
            solution=str(item_solutions[recipe]),
            input=str(src),
            output=str(tmp_path / f"w{workers}"),
            workers=workers,
            chunk_lines=4,
            item_metadata=("GENRES", "TITLE"),
        )
        record = run_job(params, JobStore())
        assert record["itemMetadata"] == ["GENRES", "TITLE"]
        outs[workers] = (tmp_path / f"w{workers}" / src.name).with_suffix(".json.out").read_bytes()
    assert outs[1] == outs[3]
    titles = _titles()
    for line in outs[1].splitlines():
        out = orjson.loads(line)["output"]
        assert len(out["metadata"]) == len(out["recommendedItems"])
        for item, meta in zip(out["recommendedItems"], out["metadata"], strict=True):
            assert list(meta) == ["GENRES", "TITLE"]  # the order asked for
            assert meta == {k: titles.get(item, {}).get(k, "") for k in ("GENRES", "TITLE")}


def test_without_the_option_the_line_is_unchanged(item_solutions, tmp_path):
    params = JobParams(
        solution=str(item_solutions["sims"]),
        input=str(EXAMPLES / "items.json"),
        output=str(tmp_path),
        workers=1,
    )
    record = run_job(params, JobStore())
    assert b"metadata" not in (tmp_path / "items.json.out").read_bytes()
    assert "itemMetadata" not in record


def test_unknown_ranking_items_get_empty_values(item_solutions):
    got = get_personalized_ranking(
        str(item_solutions["personalized-ranking"]),
        user_id="8",
        input_list=["nope", "1300854"],
        options=AnswerOptions(item_metadata=("TITLE",)),
    )["personalizedRanking"]
    assert got[-1] == {"itemId": "nope", "score": 0.0, "metadata": {"TITLE": ""}}
    assert got[0]["metadata"]["TITLE"].startswith("Iron Man 3")


def test_field_names_are_parsed_upper_cased_and_limited():
    assert parse_item_fields("title, Genres,TITLE") == ("TITLE", "GENRES")
    assert parse_item_fields(None) == ()
    with pytest.raises(UsageError, match="needs item field names"):
        parse_item_fields(" , ")
    with pytest.raises(UsageError, match="11 fields"):
        parse_item_fields(",".join(f"F{i}" for i in range(11)))


def test_loaded_solution_fields_are_listed(item_solutions):
    from personalize_batch.job.scoring import item_field_names

    assert item_field_names(load(str(item_solutions["sims"]))) == ["GENRES", "TITLE"]


def test_sdk_metadata_columns(item_solutions, solutions):
    import personalize_batch

    runtime = personalize_batch.client("personalize-runtime")
    up = str(item_solutions["user-personalization"])
    got = runtime.get_recommendations(
        campaignArn=up, userId="653", numResults=1, metadataColumns={"ITEMS": ["TITLE"]}
    )
    assert got["itemList"] == [
        {"itemId": "1670345", "score": 0.75687, "metadata": {"TITLE": "Now You See Me (2013)"}}
    ]
    ranked = runtime.get_personalized_ranking(
        solution=str(item_solutions["personalized-ranking"]),
        userId="8",
        inputList=["1300854"],
        metadataColumns={"ITEMS": ["genres"]},
    )
    assert ranked["personalizedRanking"][0]["metadata"] == {"GENRES": "Action|Sci-Fi|Thriller"}
    invalid = runtime.exceptions.InvalidInputException
    with pytest.raises(invalid, match="ITEMS"):
        runtime.get_recommendations(campaignArn=up, userId="653", metadataColumns={"USERS": []})
    with pytest.raises(invalid, match="has no items data"):
        runtime.get_recommendations(
            campaignArn=str(solutions["user-personalization"]),
            userId="653",
            metadataColumns={"ITEMS": ["TITLE"]},
        )
    with pytest.raises(invalid, match="1-50 with item metadata"):
        runtime.get_recommendations(
            campaignArn=up, userId="653", numResults=51, metadataColumns={"ITEMS": ["TITLE"]}
        )
