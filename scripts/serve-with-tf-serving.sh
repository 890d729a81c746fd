#!/usr/bin/env bash
# Serve an exported model with stock TensorFlow Serving in Docker.
#   scripts/serve-with-tf-serving.sh [--gpu] [--no-batching] [--host ADDR]
#       [--config serving/models.config] [EXPORT_DIR] [MODEL_NAME]
# EXPORT_DIR (default checkpoints/export) holds integer version directories
# (1/, 2/, ...) with saved_model.pb; it is mounted at /models/MODEL_NAME
# (default captioner). gRPC on 8500, REST on 8501, published on ADDR
# (default 127.0.0.1; 0.0.0.0 for every interface). With --config, the model
# config file decides which models are served (re-read every 60 s).
# --no-batching: server-side batching merges concurrent requests along the
# first dimension, which the score_matrix signature ([N] x [M]) cannot take.
# The GPU image is used with --gpu or when `nvidia-smi -L` works.
set -euo pipefail

usage() {
  sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit "${1:-2}"
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
batching_file="${repo_root}/serving/batching_parameters.config"
use_gpu=0
batching=1
config_file=""
host="127.0.0.1"
positional=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpu) use_gpu=1 ;;
    --no-batching) batching=0 ;;
    --host)
      [[ $# -ge 2 ]] || usage
      host="$2"
      shift
      ;;
    --config)
      [[ $# -ge 2 ]] || usage
      config_file="$2"
      shift
      ;;
    -h | --help) usage 0 ;;
    -*)
      echo "error: unknown option $1" >&2
      usage
      ;;
    *) positional+=("$1") ;;
  esac
  shift
done
[[ ${#positional[@]} -le 2 ]] || usage

export_dir="${positional[0]:-checkpoints/export}"
model_name="${positional[1]:-captioner}"

if [[ ! -d "${export_dir}" ]]; then
  echo "error: export directory '${export_dir}' does not exist." >&2
  echo "Export a model first (it writes ${export_dir}/<version>/saved_model.pb)." >&2
  exit 1
fi
# TF Serving only loads versions whose directory name is an integer.
found_version=0
for version_dir in "${export_dir}"/*/; do
  version="$(basename "${version_dir}")"
  if [[ "${version}" =~ ^[0-9]+$ && -f "${version_dir}saved_model.pb" ]]; then
    found_version=1
    break
  fi
done
if [[ "${found_version}" -eq 0 ]]; then
  echo "error: '${export_dir}' has no version directory with a SavedModel" >&2
  echo "(expected ${export_dir}/<integer version>/saved_model.pb)." >&2
  exit 1
fi
export_dir="$(cd "${export_dir}" && pwd)"  # docker needs absolute mount paths

if [[ -n "${config_file}" && ! -f "${config_file}" ]]; then
  echo "error: model config file '${config_file}' not found." >&2
  exit 1
fi

if ! docker info >/dev/null 2>&1; then
  echo "error: no Docker engine reachable ('docker info' failed)." >&2
  exit 1
fi

if [[ "${use_gpu}" -eq 0 ]] && command -v nvidia-smi >/dev/null 2>&1 \
  && nvidia-smi -L >/dev/null 2>&1; then
  use_gpu=1
fi
image="tensorflow/serving:2.21.0"
docker_args=(--rm -p "${host}:8500:8500" -p "${host}:8501:8501")
if [[ "${use_gpu}" -eq 1 ]]; then
  image="tensorflow/serving:2.21.0-gpu"
  docker_args+=(--gpus all)
fi

# The stock entrypoint runs tensorflow_model_server --port=8500
# --rest_api_port=8501 --model_name=$MODEL_NAME
# --model_base_path=/models/$MODEL_NAME and appends our arguments.
docker_args+=(
  -e "MODEL_NAME=${model_name}"
  -v "${export_dir}:/models/${model_name}:ro"
)
server_args=()
if [[ "${batching}" -eq 1 ]]; then
  docker_args+=(-v "${batching_file}:/config/batching_parameters.config:ro")
  server_args+=(
    --enable_batching
    --batching_parameters_file=/config/batching_parameters.config
  )
fi
if [[ -n "${config_file}" ]]; then
  config_file="$(cd "$(dirname "${config_file}")" && pwd)/$(basename "${config_file}")"
  docker_args+=(-v "${config_file}:/config/models.config:ro")
  server_args+=(
    --model_config_file=/config/models.config
    --model_config_file_poll_wait_seconds=60
  )
fi

echo "Serving '${model_name}' from ${export_dir} with ${image}:" \
  "gRPC ${host}:8500, REST http://${host}:8501/v1/models/${model_name}" >&2
exec docker run "${docker_args[@]}" "${image}" ${server_args[@]+"${server_args[@]}"}
