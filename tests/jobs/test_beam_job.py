"""The --csv job as an Apache Beam pipeline: on the DirectRunner with 2 workers it gives the local job's rows,
every column, every input row once (bad rows with their error); a glob reads several CSVs; the output is
shards or one file; a bad runner or option is a one-line error."""

import csv
import glob
import os
import subprocess
import sys

import pytest
from PIL import Image

from captioning.inference.runners import open_model
from captioning.jobs import beam_pipeline
from captioning.jobs.csv_job import SCORE_COLUMNS, run_csv_job, score_columns
from captioning.jobs.pairs_csv import CsvError, read_pairs_csv
from tests.helpers import CHILD_TIMEOUT, write_image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWO_WORKERS = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_threading"]
CAPTIONS = [
    "a red circle",
    "a small green square on the left",
    "two objects: a blue star and a gray cross",
    "a large yellow triangle above a purple circle",
    'a "quoted", comma\nand a new line',
]
RANK_BY, ALPHA = "debiased", 0.5


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, sample_images):
    """Two CSVs sharing images, with bad rows among good ones: a missing image, an empty image path, a corrupt
    JPEG, an unsupported format (TIFF), an empty caption and a short row without the caption column."""
    directory = tmp_path_factory.mktemp("beam_pairs")
    paths, _ = sample_images
    write_image(directory / "red.png", color=(220, 20, 20))
    (directory / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (32, 32)).save(directory / "scan.tif")
    first = [
        (0, "red.png", CAPTIONS[0]),
        (1, paths[0], CAPTIONS[1]),
        (2, "missing.png", CAPTIONS[0]),
        (3, paths[1], CAPTIONS[2]),
        (4, "red.png", "  ?! "),
        (5, paths[2], CAPTIONS[3]),
        (6, "corrupt.jpg", CAPTIONS[0]),
        (7, paths[0], CAPTIONS[4]),
        (8, "red.png", CAPTIONS[1]),
        (9, "", CAPTIONS[2]),
        (10, "scan.tif", CAPTIONS[1]),
        (11, "red.png"),
    ]
    second = [
        (20 + i, image, caption)
        for i, (image, caption) in enumerate(
            [(paths[1], CAPTIONS[0]), ("red.png", CAPTIONS[3]), (paths[2], ""), (paths[0], CAPTIONS[2])]
        )
    ]
    return (
        write_csv(directory / "pairs-a.csv", ["id", "image_path", "caption"], first),
        write_csv(directory / "pairs-b.csv", ["id", "image_path", "caption"], second),
    )


EXPECTED_ERRORS = {
    "2": "missing image",
    "4": "empty caption",
    "6": "unreadable image",
    "9": "missing image",
    "10": "unsupported image format",
    "11": "empty caption",
    "22": "empty caption",
}


@pytest.fixture(scope="module")
def model(tiny_export_dir):
    return open_model(tiny_export_dir)


@pytest.fixture(scope="module")
def local_rows(model, inputs, tmp_path_factory):
    """{(source file, row number): the local job's output row} over both CSVs."""
    directory = tmp_path_factory.mktemp("local_out")
    rows = {}
    for path in inputs:
        output = directory / os.path.basename(path)
        run_csv_job(model, read_pairs_csv(path), str(output), RANK_BY, ALPHA, progress=False)
        rows.update({(path, number): row for number, row in enumerate(read_rows(output), start=1)})
    return rows


def beam_job(model, tiny_export_dir, pattern, output, num_shards=0):
    contrastive = "contrastive" in model.output_names("score_features")
    return beam_pipeline.BeamJob(
        pattern,
        str(output),
        tiny_export_dir,
        score_columns(False, contrastive, True),
        rank_by=RANK_BY,
        alpha=ALPHA,
        num_shards=num_shards,
    )


def run_beam(job, pipeline_args=TWO_WORKERS):
    paths = beam_pipeline.match_inputs(job.input_pattern)
    return beam_pipeline.run_beam_job(
        beam_pipeline.make_pipeline(pipeline_args), job, paths, beam_pipeline.input_columns(paths)
    )


def assert_same_rows(beam_rows, local_rows):
    """Every local row exactly once, every column equal (scores to 1e-5)."""
    keys = [(row["source_file"], int(row["source_row"])) for row in beam_rows]
    assert sorted(keys) == sorted(local_rows), "every input row exactly once"
    for row in beam_rows:
        expected = local_rows[(row["source_file"], int(row["source_row"]))]
        assert set(row) == set(expected) | {"source_file", "source_row"}
        for column, value in expected.items():
            if column in SCORE_COLUMNS + ("contrastive", "debiased") and value not in ("", "True", "False"):
                assert float(row[column]) == pytest.approx(float(value), rel=1e-5, abs=1e-5), (column, row)
            else:
                assert row[column] == value, (column, row)


def test_two_workers_give_the_local_jobs_rows_in_shards(model, tiny_export_dir, inputs, local_rows, tmp_path):
    output = tmp_path / "scored.csv"
    summary, counters = run_beam(beam_job(model, tiny_export_dir, inputs[0], output, num_shards=2))
    shards = sorted(glob.glob(str(tmp_path / "scored*")))
    assert [os.path.basename(path) for path in shards] == ["scored-00000-of-00002.csv", "scored-00001-of-00002.csv"]
    rows = [row for shard in shards for row in read_rows(shard)]
    assert_same_rows(rows, {key: row for key, row in local_rows.items() if key[0] == inputs[0]})
    errors = {row["id"]: row["error"] for row in rows if row["error"]}
    assert errors.keys() == {key for key in EXPECTED_ERRORS if int(key) < 20}
    assert all(errors[key].startswith(EXPECTED_ERRORS[key]) for key in errors)
    assert [column for column in read_rows(shards[0])[0]][-2:] == ["source_file", "source_row"]
    assert (summary.rows, summary.errors) == (12, 6)
    assert counters["distinct_images"] == 8  # red, 3 samples, missing, corrupt, tif, the CSV's folder (row 9)
    assert counters["images_encoded"] == 4 and counters["pairs_scored"] == 6


def test_a_glob_over_two_csvs_written_as_one_file_from_the_command_line(tiny_export_dir, inputs, local_rows, tmp_path):
    pattern = os.path.join(os.path.dirname(inputs[0]), "pairs-*.csv")
    output = tmp_path / "all.csv"
    result = subprocess.run(
        [
            sys.executable,
            "get_similarity_score.py",
            "--model_dir",
            tiny_export_dir,
            "--csv",
            pattern,
            "--output",
            output,
            "--num_shards",
            "1",
            "--rank_by",
            RANK_BY,
            "--alpha",
            str(ALPHA),
            *TWO_WORKERS,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path) == ["all.csv"]
    assert_same_rows(read_rows(output), local_rows)
    assert "scored 9 of 16 pairs (7 with errors" in result.stdout and "pairs/s" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--runner", "NoSuchRunner"], "Unexpected pipeline runner: NoSuchRunner"),
        (["--runner", "DirectRunner", "--direct_num_wokers=2"], "unknown option --direct_num_wokers"),
        (["--runner", "DataflowRunner", "--project=p", "--temp_location=gs://b/tmp"], "Invalid GCS bucket"),  # 3 lines
        (["--runner", "DirectRunner", "--figures_dir", "f"], "figures are drawn by the local --csv job only"),
    ],
)
def test_a_bad_runner_or_option_is_one_line_and_exit_code_2(inputs, tmp_path, args, message):
    result = subprocess.run(
        [
            sys.executable,
            "get_similarity_score.py",
            "--model_dir",
            "/no/model",
            "--csv",
            inputs[0],
            "--output",
            tmp_path / "out.csv",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not os.listdir(tmp_path)


def test_a_hot_image_is_cut_into_groups_of_bounded_size():
    rows = [beam_pipeline.PairRow("a.csv", n, "hot.png", {}) for n in range(1, 8)]
    groups = list(beam_pipeline.image_groups(("hot.png", iter(rows)), max_rows=3))
    assert [len(group.rows) for group in groups] == [3, 3, 1]
    assert [row for group in groups for row in group.rows] == rows


def test_images_are_read_through_beams_filesystems_with_the_local_jobs_errors(tmp_path):
    good = write_image(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    read = {
        name: beam_pipeline.read_image(beam_pipeline.ImageGroup(str(tmp_path / name), []))
        for name in ("good.png", "broken.png", "absent.png", "")
    }
    assert read["good.png"].error is None and read["good.png"].image_bytes == open(good, "rb").read()
    assert [read[name].error for name in ("broken.png", "absent.png", "")] == [
        "unreadable image",
        "missing image",
        "missing image",
    ]
    assert beam_pipeline.image_location("gs://bucket/dir/pairs.csv", " img/1.jpg") == "gs://bucket/dir/img/1.jpg"
    assert beam_pipeline.image_location("gs://bucket/pairs.csv", "s3://other/1.jpg") == "s3://other/1.jpg"


def test_input_columns_keep_every_files_columns_and_refuse_a_file_without_them(tmp_path):
    first = write_csv(tmp_path / "a.csv", ["image_path", "caption", "id"], [])
    second = write_csv(tmp_path / "b.csv", ["source", "image_path", "caption"], [])
    assert beam_pipeline.input_columns([first, second]) == ["image_path", "caption", "id", "source"]
    wrong = write_csv(tmp_path / "c.csv", ["path", "text"], [])
    with pytest.raises(CsvError, match="image_path,caption"):
        beam_pipeline.input_columns([first, wrong])
    with pytest.raises(CsvError, match="no such file"):
        beam_pipeline.match_inputs(str(tmp_path / "none-*.csv"))


def test_likelihood_only_groups_score_as_the_local_job_without_the_prior(model, tiny_export_dir, inputs, tmp_path):
    """The handler's scoring on its own (no pipeline): image groups of the first CSV with --likelihood_only."""
    run_csv_job(model, read_pairs_csv(inputs[0]), str(tmp_path / "local.csv"), progress=False, likelihood_only=True)
    local = {(inputs[0], number): row for number, row in enumerate(read_rows(tmp_path / "local.csv"), start=1)}
    rows_of_image = {}
    for row in beam_pipeline.read_rows(inputs[0]):
        rows_of_image.setdefault(row.image_path, []).append(row)
    groups = [
        beam_pipeline.read_image(group)
        for keyed in rows_of_image.items()
        for group in beam_pipeline.image_groups(keyed, max_rows=2)
    ]
    contrastive = "contrastive" in model.output_names("score_text_features")
    job = beam_pipeline.BeamJob(
        inputs[0], "unused", tiny_export_dir, score_columns(True, contrastive, False), likelihood_only=True
    )
    scored = beam_pipeline.score_image_groups(model, groups, job)
    assert "pmi" not in scored[0] and "prior_log_likelihood" not in scored[0]
    assert_same_rows([{key: str(value) for key, value in row.items()} for row in scored], local)
