#!/usr/bin/env bash
# Build the project image and run a command in it with the repo mounted at
# /workspace (default command: bash).
#   scripts/run-in-docker.sh                       # interactive shell
#   scripts/run-in-docker.sh python -m pytest -q   # any command
#   PUBLISH_PORTS=1 scripts/run-in-docker.sh python -m serving.server \
#       --host 0.0.0.0 --model_base_path checkpoints/export   # serve on 8500/8501
# Env: IMAGE (default image-text-similarity:latest); PUBLISH_PORTS=1 publishes
# 8500/8501 on PUBLISH_HOST (default 127.0.0.1; 0.0.0.0 for every interface).
# Inside the container the server must listen on 0.0.0.0 to be reachable.
# On a host where `nvidia-smi -L` works, the GPU base image and --gpus all
# are used.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${IMAGE:-image-text-similarity:latest}"

if ! docker info >/dev/null 2>&1; then
  echo "error: no Docker engine reachable ('docker info' failed)." >&2
  echo "Start the Docker daemon or point DOCKER_HOST at one, then retry." >&2
  exit 1
fi

base_image="tensorflow/tensorflow:2.21.0"
gpu_args=()
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  base_image="tensorflow/tensorflow:2.21.0-gpu"
  gpu_args=(--gpus all)
fi

docker build \
  --file "${repo_root}/scripts/Dockerfile" \
  --build-arg "BASE_IMAGE=${base_image}" \
  --tag "${image}" \
  "${repo_root}"

# -t only with a terminal: `docker run -t` fails when stdin is not a TTY (CI).
tty_args=(-i)
if [[ -t 0 && -t 1 ]]; then
  tty_args=(-it)
fi

port_args=()
if [[ "${PUBLISH_PORTS:-0}" == "1" ]]; then
  publish_host="${PUBLISH_HOST:-127.0.0.1}"
  port_args=(-p "${publish_host}:8500:8500" -p "${publish_host}:8501:8501")
fi

if [[ $# -eq 0 ]]; then
  set -- bash
fi

# Run as the caller so files written to the mounted repo are not root-owned.
# ${a[@]+"${a[@]}"} expands an empty array safely under set -u on bash 3.2.
exec docker run --rm "${tty_args[@]}" \
  ${gpu_args[@]+"${gpu_args[@]}"} \
  ${port_args[@]+"${port_args[@]}"} \
  --user "$(id -u):$(id -g)" \
  --volume "${repo_root}:/workspace" \
  --workdir /workspace \
  "${image}" "$@"
