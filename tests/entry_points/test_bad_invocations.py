"""Every entry point, invoked badly, says what is wrong in one line (`error: ...`) and exits 2, with no traceback.

One table: (entry point, arguments, a substring of the line). Placeholders in the arguments are filled from
fixtures: {model} the tiny trained model's export, {fake} the fake model (tests/fake_model.py: quick to load),
{no_head} the fake model without the contrastive head, {dir} a fresh
folder, {file} an existing file, {busy_port} a port another socket holds, {busy_index} an index folder another
process holds, {closed_url} a URL where nothing listens.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from captioning.util.local_ports import free_port
from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = ["-m", "serving.server", "--port", "0"]
SEARCH = ["-m", "captioning.search"]
EVALUATE = ["-m", "captioning.evaluate"]
ABSL_INFO = re.compile(r"^I\d{4} [\d:.]+ +\d+ \S+:\d+\] ")

CASES = [
    # train.py
    (["train.py", "--checkpoint_every", "0"], "flag --checkpoint_every=0: must be at least 1"),
    (["train.py", "--epochs", "0"], "with 0 there is nothing to train"),
    (["train.py", "--batch_size", "-4"], "flag --batch_size=-4: must be at least 1"),
    (["train.py", "--context_heads", "-1"], "flag --context_heads=-1: must be 0 (no cell context) or more"),
    (["train.py", "--count_loss_weight", "-1"], "flag --count_loss_weight=-1.0: must be 0 (no counting loss) or more"),
    (["train.py", "--dataset", "coco"], "--dataset other than synthetic needs --annotations"),
    (["train.py", "--dataset", "csv", "--annotations", "{dir}"], "--annotations={dir}: must name an existing file"),
    (["train.py", "--val_fraction", "1"], "--val_fraction=1.0: must be in [0, 1)"),
    (["train.py", "--output_dir", "{file}"], "is a file: give a folder"),
    (["train.py", "--tfrecords", "{dir}/none"], "must name a folder written by scripts/make_tfrecords.py"),
    (["train.py", "--no_such_flag"], "unknown flag --no_such_flag (see --helpshort)"),  # nothing close
    (["train.py", "--epoch", "2"], "unknown flag --epoch (did you mean --epochs?)"),
    (["train.py", "--epochs=2", "3"], "unexpected arguments: 3"),
    # get_similarity_score.py
    (
        ["get_similarity_score.py", "--generate", "--image_path", "{image}", "--beam_size", "0"],
        "flag --beam_size=0: must be at least 1",
    ),
    (["get_similarity_score.py", "--image_path", "{dir}/missing.png", "--text", "a cat"], "no such file"),
    (["get_similarity_score.py", "--txt", "a cat"], "unknown flag --txt (did you mean --text?)"),
    (["get_similarity_score.py", "--labels_file", "{dir}"], "--labels_file={dir}: must name an existing file"),
    (
        [
            "get_similarity_score.py",
            "--generate",
            "--image_path",
            "{image}",
            "--model_dir",
            "{model}",
            "--beam_size",
            "33",
        ],
        "beam_size must be at most 32",
    ),  # the exported graph's own limit
    # python -m captioning.evaluate
    ([*EVALUATE, "--model_dir", "{fake}", "--retrieval_images", "0"], "--retrieval_images=0: must be at least 2"),
    (
        [*EVALUATE, "--model_dir", "{fake}", "--output_json", "{dir}/no/such/folder/report.json"],
        "--output_json={dir}/no/such/folder/report.json: cannot be written",
    ),
    ([*EVALUATE, "--model_dir", "{fake}", "--output_json", "{dir}"], "cannot be written"),
    ([*EVALUATE, "--model_dir", "{dir}/none"], "--model_dir={dir}/none: must name an export folder"),
    # python -m captioning.search
    (
        [*SEARCH, "add", "--index_dir", "{dir}/index", "--model_dir", "{fake}", "--batch_size", "0", "{image}"],
        "argument --batch_size: must be at least 1, got 0",
    ),
    (
        [*SEARCH, "search", "--index_dir", "{dir}/index", "--model_dir", "{fake}", "--k", "-1", "red"],
        "argument --k: must be at least 1",
    ),
    ([*SEARCH, "add", "--index_dir", "{dir}/index", "--model_dir", "{no_head}", "{image}"], "has no contrastive head"),
    ([*SEARCH, "search", "--index_dir", "{dir}/index", "--model_dir", "{no_head}", "red"], "--contrastive_weight 0"),
    ([*SEARCH, "count", "--index_dir", "{busy_index}", "--model_dir", "{fake}"], "another process"),
    (
        [*SEARCH, "count", "--index_dir", "{dir}/index", "--model_dir", "{fake}", "--qdrant_url", "{closed_url}"],
        "cannot reach the Qdrant server at {closed_url}",
    ),
    ([*SEARCH, "count", "--index_dir", "{file}", "--model_dir", "{fake}"], "is a file: give a folder"),
    ([*SEARCH, "frobnicate"], "invalid choice: 'frobnicate'"),
    ([*SEARCH, "list", "--index_dir", "{dir}/index", "--josn"], "unknown flag --josn (did you mean --json?)"),
    # python -m serving.server
    ([*SERVER, "--model_base_pth", "{fake}"], "unknown flag --model_base_pth (did you mean --model_base_path?)"),
    ([*SERVER, "--model_base_path", "{dir}/missing"], "--model_base_path={dir}/missing: must name an existing folder"),
    ([*SERVER, "--model_config_file", "{bad_config}"], "is not a valid model config text proto"),
    ([*SERVER, "--model_config_file", "{config_with_missing_path}"], "Could not find base path"),
    ([*SERVER, "--model_base_path", "{fake}", "--rest_api_port", "-5"], "must be a port number"),
    ([*SERVER, "--model_base_path", "{fake}", "--port", "{busy_port}", "--rest_api_port", "0"], "the port is in use"),
    ([*SERVER, "--model_base_path", "{fake}", "--rest_api_port", "{busy_port}"], "give another --rest_api_port"),
    (
        [*SERVER, "--model_base_path", "{no_head}", "--rest_api_port", "0", "--index_dir", "{dir}/index"],
        "--rest_api_port other than 0",
    ),
    (
        [*SERVER, "--model_base_path", "{no_head}", "--rest_api_port", "{free_port}", "--index_dir", "{dir}/index"],
        "has no contrastive head",
    ),
    (
        [*SERVER, "--model_base_path", "{fake}", "--rest_api_port", "{free_port}", "--index_dir", "{busy_index}"],
        "another process",
    ),
    (
        [
            *SERVER,
            "--model_base_path",
            "{fake}",
            "--rest_api_port",
            "{free_port}",
            "--index_dir",
            "{dir}/index",
            "--qdrant_url",
            "{closed_url}",
        ],
        "cannot reach the Qdrant server",
    ),
    # the scripts users run
    (["scripts/make_synthetic_dataset.py", "--output_dir", "{dir}", "--num_images", "0"], "must be at least 1"),
    (["scripts/make_synthetic_dataset.py", "--output_dir", "{file}"], "is a file: give a folder"),
    (
        [
            "scripts/make_synthetic_dataset.py",
            "--output_dir",
            "{dir}",
            "--num_images",
            "2",
            "--held_out_combinations",
            "purple",
        ],
        "purple",
    ),
    (["scripts/make_synthetic_dataset.py"], "--output_dir"),
    (["scripts/make_tfrecords.py", "--output_dir", "{dir}", "--images_per_shard", "0"], "must be at least 1"),
    (["scripts/draw_example.py", "--output", "{dir}"], "is a folder: give a .png file name"),
    (["scripts/draw_example.py", "--output", "{dir}/example.unknown"], "unknown file extension"),
    (["scripts/benchmark_batch_scoring.py", "--model_dir", "{dir}/none"], "must name an export folder"),
    (["scripts/benchmark_precision_scores.py", "--num_images", "0"], "must be at least 1"),
    (["scripts/benchmark_training.py", "--steps", "10"], "must be a multiple of 16"),
    (["scripts/benchmark_training.py", "--cases", "nope"], "unknown case(s) nope"),
    (["scripts/benchmark_serving.py", "--concurrency", "0"], "takes whole numbers of at least 1"),
    (["scripts/benchmark_search.py", "--candidates", "16,x"], "must be a whole number, got 'x'"),
    (["scripts/benchmark_search.py", "--model_dir", "{dir}/none"], "no exported SavedModel"),
    (["scripts/estimate_training_flops.py", "--devices", "0"], "must be at least 1"),
    (["scripts/benchmark_graph_limits.py", "--beam_size", "0"], "must be at least 1"),
    (["scripts/probe_relations.py", "--model_dir", "{dir}/none"], "must name an export folder"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_export_dir, sample_images):
    """The placeholder values, and the busy port and index held for the whole module."""
    from tests.fake_model import export_fake_model

    root = tmp_path_factory.mktemp("bad_invocations")
    fake, no_head = str(root / "fake"), str(root / "no_head")
    export_fake_model(fake, 1)
    export_fake_model(no_head, 1, contrastive=False)
    (root / "bad.config").write_text("model_config_list { config { name: 'x' base_path: \n")
    (root / "missing.config").write_text(
        f"model_config_list {{ config {{ name: 'x' base_path: '{root}/nothing' model_platform: 'tensorflow' }} }}\n"
    )
    (root / "a_file").write_text("not a folder\n")
    busy_socket = socket.socket()
    busy_socket.bind(("127.0.0.1", 0))
    busy_socket.listen()
    # Embedded Qdrant lets one process hold a folder: a child process holds this one while the tests run.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys
        from captioning.search.index import ImageIndex
        index = ImageIndex({str(root / "busy_index")!r})
        print("ready", flush=True)
        sys.stdin.read()
        """),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    yield {
        "model": tiny_export_dir,
        "fake": fake,
        "no_head": no_head,
        "image": sample_images[0][0],
        "file": str(root / "a_file"),
        "bad_config": str(root / "bad.config"),
        "config_with_missing_path": str(root / "missing.config"),
        "busy_port": str(busy_socket.getsockname()[1]),
        "busy_index": str(root / "busy_index"),
        "closed_url": f"http://127.0.0.1:{free_port()}",
    }
    holder.stdin.close()
    holder.wait(timeout=60)
    busy_socket.close()


def run(arguments, environ=None, timeout=CHILD_TIMEOUT):
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(environ or {})},
    )


@pytest.mark.parametrize(
    "arguments, expected", CASES, ids=[" ".join(case[0][:3]) + " " + case[1][:30] for case in CASES]
)
def test_a_bad_invocation_is_one_line_and_exit_code_2(places, tmp_path, arguments, expected):
    values = {**places, "dir": str(tmp_path), "free_port": str(free_port())}
    result = run([argument.format(**values) for argument in arguments])
    # The server's own progress log lines (absl INFO: "Successfully loaded servable ...") may surround the error.
    lines = [line for line in result.stderr.strip().splitlines() if not ABSL_INFO.match(line)]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert expected.format(**values) in lines[0]


def test_a_finished_training_run_is_not_exported_again(tiny_run_dir, tmp_path):
    """train.py rerun on a finished output folder says so, names the exported version, and exports nothing."""
    from tests.helpers import TINY_MODEL, TINY_TRAINING

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_dir)
    model, training = TINY_MODEL, TINY_TRAINING
    data = run_dir / "data"
    result = run(
        [
            "train.py",
            "--output_dir",
            str(run_dir),
            "--dataset",
            "coco",
            "--annotations",
            str(data / "annotations" / "captions.json"),
            "--image_dir",
            str(data / "images"),
            "--image_size",
            str(model.image_size),
            "--embed_dim",
            str(model.embed_dim),
            "--num_layers",
            str(model.num_layers),
            "--num_heads",
            str(model.num_heads),
            "--context_heads",
            str(model.context_heads),
            "--ff_dim",
            str(model.ff_dim),
            "--max_length",
            str(model.max_length),
            "--contrastive_dim",
            str(model.contrastive_dim),
            "--batch_size",
            str(training.global_batch_size),
            "--epochs",
            str(training.epochs),
            "--steps_per_epoch",
            str(training.steps_per_epoch),
            "--checkpoint_every",
            str(training.checkpoint_every_steps),
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already trained" in result.stdout and "exported as version 1" in result.stdout, result.stdout[-2000:]
    assert sorted(os.listdir(run_dir / "export")) == ["1"]


def test_verbose_is_accepted_everywhere_and_brings_tensorflows_lines_back(places):
    """Each entry point takes --verbose; with it the server shows TensorFlow's start-up lines, without it only the
    error line."""
    for arguments in (
        ["train.py", "--epochs", "0"],
        ["get_similarity_score.py", "--beam_size", "0"],
        [*EVALUATE, "--num_images", "0"],
        [*SEARCH, "count", "--index_dir", places["file"]],
        ["scripts/make_synthetic_dataset.py", "--output_dir", places["file"]],
    ):
        result = run([*arguments, "--verbose"])
        assert result.returncode == 2 and "verbose" not in result.stderr, result.stderr[-2000:]
    bad_start = [*SERVER, "--model_base_path", places["fake"], "--port", "-1"]
    quiet, verbose = run(bad_start), run([*bad_start, "--verbose"])
    assert quiet.returncode == verbose.returncode == 2
    assert quiet.stderr.strip().splitlines() == [
        next(line for line in verbose.stderr.splitlines() if line.startswith("error: "))
    ]
    assert len(verbose.stderr.strip().splitlines()) > 1  # TensorFlow's start-up lines
