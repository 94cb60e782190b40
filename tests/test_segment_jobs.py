"""Segment jobs through `pbatch run`: users for items and for attribute expressions,
error lines for what a segment recipe cannot answer, the same bytes for any number of
workers, and inputs of the other kind refused up front."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from personalize_batch.arns import INFERENCE, SEGMENT
from personalize_batch.cli import main
from personalize_batch.job.params import CHUNK_ANSWERS, JobParams, default_results
from personalize_batch.job.run import run_job
from personalize_batch.job.store import JobStore


def pbatch(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="pbatch")


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_item_segment_job_names_users_and_an_unknown_item_is_an_error_line(
    segment_solutions, tmp_path
):
    known = segment_solutions["items"][:3]
    data = [{"itemId": i} for i in known[:2]] + [{"itemId": "no-such-item"}, {"itemId": known[2]}]
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    result = pbatch(
        "run",
        "-s",
        segment_solutions["item-affinity"],
        "-i",
        tmp_path / "in.json",
        "-o",
        tmp_path / "out",
        "-n",
        "4",
    )
    assert result.exit_code == 3, result.output
    got = lines_of(tmp_path / "out" / "in.json.out")
    assert [g["input"] for g in got] == data
    assert got[2]["output"] is None and "not in the solution" in got[2]["error"]
    for g in (got[0], got[1], got[3]):
        assert g["error"] is None
        assert len(g["output"]["recommendedUsers"]) == 4
        assert g["output"]["scores"] == sorted(g["output"]["scores"], reverse=True)


def test_the_same_bytes_for_any_number_of_workers(segment_solutions, tmp_path):
    data = [{"itemId": i} for i in segment_solutions["items"][:40]]
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        result = pbatch(
            "run",
            "-s",
            segment_solutions["item-affinity"],
            "-i",
            tmp_path / "in.json",
            "-o",
            out,
            "-n",
            "10",
            "--workers",
            workers,
        )
        assert result.exit_code == 0, result.output
        outs.append((out / "in.json.out").read_bytes())
    assert outs[0] == outs[1]


def test_attribute_lines_and_their_errors(segment_solutions, tmp_path):
    data = [
        {"itemAttributes": 'ITEMS.genres = "Comedy" AND ITEMS.genres = "Action"'},
        {"itemAttributes": 'ITEMS.mood = "dark"'},
        {"itemAttributes": 'ITEMS.genres = "Comedy" AND'},
        {"itemAttributes": 'ITEMS.genres = "Western"'},
    ]
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    result = pbatch(
        "run",
        "-s",
        segment_solutions["item-attribute-affinity"],
        "-i",
        tmp_path / "in.json",
        "-o",
        tmp_path / "out",
        "-n",
        "5",
    )
    assert result.exit_code == 3, result.output
    got = lines_of(tmp_path / "out" / "in.json.out")
    assert len(got[0]["output"]["recommendedUsers"]) == 5
    assert got[1]["error"] == (
        "itemAttributes: the item metadata has no field MOOD (its fields: GENRES)"
    )
    assert "at character 28, found the end" in got[2]["error"]
    assert got[3]["error"] == 'the expression matches no item: ITEMS.GENRES = "Western"'


def test_inputs_of_the_other_kind_are_refused_up_front(segment_solutions, solutions, tmp_path):
    (tmp_path / "users.json").write_text('{"userId": "1"}\n{"userId": "2"}\n')
    result = pbatch(
        "run",
        "-s",
        segment_solutions["item-affinity"],
        "-i",
        tmp_path / "users.json",
        "-o",
        tmp_path / "out1",
    )
    assert result.exit_code == 2
    assert 'item-affinity needs "itemId"' in result.stderr
    (tmp_path / "items.json").write_text('{"itemAttributes": "ITEMS.genres = \\"Drama\\""}\n')
    result = pbatch(
        "run",
        "-s",
        solutions["user-personalization"],
        "-i",
        tmp_path / "items.json",
        "-o",
        tmp_path / "out2",
    )
    assert result.exit_code == 2
    assert 'user-personalization needs "userId"' in result.stderr


def test_num_results_of_a_segment_job_default_range_and_chunks(segment_solutions, tmp_path):
    """Above 500 users a line for a segment solution (not for an inference one), the top
    1 % of users (at least 25) by default, one line over 5,000,000 refused; a chunk holds
    fewer lines when each asks for many users, and the bytes do not change."""
    model = segment_solutions["item-affinity"]
    data = [{"itemId": i} for i in segment_solutions["items"][:30]]
    (tmp_path / "in.json").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    result = pbatch("run", "-s", model, "-i", tmp_path / "in.json", "-o", tmp_path / "d", "-q")
    assert result.exit_code == 0, result.output
    got = lines_of(tmp_path / "d" / "in.json.out")
    assert {len(g["output"]["recommendedUsers"]) for g in got} == {25}  # 802 users: 1 % is 8
    record = json.loads(pbatch("jobs", "list", "--kind", "segment").stdout)["batchSegmentJobs"]
    name = record[0]["jobName"]
    assert (
        json.loads(pbatch("jobs", "describe", name).stdout)["batchSegmentJob"]["numResults"] == 25
    )
    assert (default_results(True, 802), default_results(True, 1_000_000)) == (25, 10_000)
    assert default_results(True, 10**9) == 5_000_000 and default_results(False, 10**6) == 25

    outs = []
    for chunk in (1024, 1):
        out = tmp_path / f"c{chunk}"
        p = JobParams(
            solution=str(model),
            input=str(tmp_path / "in.json"),
            output=str(out),
            num_results=700,
            chunk_lines=chunk,
            workers=1,
        )
        run_job(p, JobStore())
        outs.append((out / "in.json.out").read_bytes())
    assert outs[0] == outs[1]
    lines = lines_of(tmp_path / "c1" / "in.json.out")
    assert max(len(g["output"]["recommendedUsers"]) for g in lines) == 700
    assert JobParams(solution="s", input="i", num_results=CHUNK_ANSWERS // 3).lines_per_chunk() == 3
    assert JobParams(solution="s", input="i", num_results=5_000_000).lines_per_chunk() == 1
    assert JobParams(solution="s", input="i", num_results=500).lines_per_chunk() == 1024

    result = pbatch("run", "-s", model, "-i", tmp_path / "in.json", "-n", "5000001")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "1-5,000,000 users per line for a segment solution" in result.stderr


def test_a_segment_solution_in_recommend_describe_and_run_options(
    segment_solutions, solutions, tmp_path
):
    """recommend refuses a segment solution with where to go instead; describe shows the
    segment rule it keeps; item fields beside users and more than 500 items a line for an
    inference solution are refused before the job exists."""
    model = segment_solutions["item-affinity"]
    result = pbatch("recommend", "-s", model, "--item-id", segment_solutions["items"][0])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "pbatch: error: item-affinity solutions answer users for items, in batch segment jobs "
        "only (Personalize has no real-time segments): run one with `pbatch run` or "
        "`pbatch create-batch-segment-job`\n"
    )
    for recipe in ("item-affinity", "item-attribute-affinity"):
        shown = json.loads(pbatch("describe", segment_solutions[recipe]).stdout)
        rule = shown["segmentRule"]
        assert set(rule) == {"source", "activityExponent", "cooccurrenceExponent"}
        assert rule["source"] in ("cooccurrence", "neighbours", "neighbours+item-model")
    assert "segmentRule" not in json.loads(pbatch("describe", solutions["sims"]).stdout)

    (tmp_path / "in.json").write_text(json.dumps({"itemId": segment_solutions["items"][0]}))
    result = pbatch(
        "run",
        "-s",
        model,
        "-i",
        tmp_path / "in.json",
        "--item-metadata",
        "GENRES",
        "--job-name",
        "meta",
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "pbatch: error: --item-metadata adds item fields to recommended items; an "
        "item-affinity solution answers users\n"
    )
    (tmp_path / "users.json").write_text('{"userId": "653"}\n')
    result = pbatch(
        "run",
        "-s",
        solutions["sims"],
        "-i",
        tmp_path / "users.json",
        "-n",
        "501",
        "--job-name",
        "many",
    )
    assert result.exit_code == 2 and "for a sims solution, not 501" in result.stderr
    assert json.loads(pbatch("jobs", "list").stdout) == {
        "batchInferenceJobs": [],
        "batchSegmentJobs": [],
        "nextToken": None,
    }


def test_an_s3_segment_solution_makes_a_segment_job_from_the_start(
    segment_solutions, s3_env, s3_client, s3_bucket, tmp_path
):
    """The solution's recipe decides the job's kind before the job is recorded, on S3 as
    on disk (read from the archive's metadata member): a job refused for user lines is
    a failed segment job, never an inference job; what a segment job cannot do is
    refused before any job exists; numResults has a segment job's range."""
    s3_client.upload_file(str(segment_solutions["item-affinity"]), s3_bucket, "m/seg.npz")
    model = f"s3://{s3_bucket}/m/seg.npz"
    (tmp_path / "users.json").write_text('{"userId": "1"}\n')
    result = pbatch(
        "run", "-s", model, "-i", tmp_path / "users.json", "-o", tmp_path / "o1", "--job-name", "u"
    )
    assert result.exit_code == 2, result.output
    assert 'item-affinity needs "itemId"' in result.output
    assert JobStore().records(kind=INFERENCE) == []
    failed = JobStore().get("u", SEGMENT)
    assert failed["status"] == "CREATE FAILED"
    assert failed["batchSegmentJobArn"].endswith("batch-segment-job/u")
    (tmp_path / "items.json").write_text(json.dumps({"itemId": segment_solutions["items"][0]}))
    # what a segment job cannot do is refused before the job exists, as for a local file
    result = pbatch("run", "-s", model, "-i", tmp_path / "items.json", "--item-metadata", "G")
    assert result.exit_code == 2
    assert result.stderr.startswith("pbatch: error: --item-metadata adds item fields")
    assert len(JobStore().records(kind=None)) == 1  # the failed job above only
    # numResults above an inference job's 500: a segment job's range, known up front
    result = pbatch(
        "run", "-s", model, "-i", tmp_path / "items.json", "-o", tmp_path / "o2", "-n", "600"
    )
    assert result.exit_code == 0, result.output
    (answer,) = lines_of(tmp_path / "o2" / "items.json.out")
    assert len(answer["output"]["recommendedUsers"]) == 600
