"""The `get_similarity_score.py --csv IN --output OUT --runner RUNNER` job: the CSV job as an Apache Beam pipeline,
on the DirectRunner here or on Dataflow, Flink or Spark, with the local job's numbers row for row.

    every CSV matching IN (any Beam filesystem), each row tagged with its file and row number
      -> keyed by image, GroupByKey, cut into groups of at most MAX_ROWS_PER_GROUP rows
      -> Reshuffle: the groups of a hot image spread over the workers instead of stalling one
      -> each group's image read once through Beam's filesystems (gs://, s3://, ...) and checked
      -> RunInference(PairScoringHandler): the SavedModel loaded once per worker process; a batch's images
         encoded once each (encode_image), their rows scored in batches of similar length (score_features)
      -> CSV lines: WriteToText shards OUT-00000-of-000NN.csv with a header, or one file

Only this module imports Beam.
"""

import csv
import dataclasses
import io
import logging
import os
import posixpath
import resource
import threading
import time
from typing import NamedTuple

from captioning.data import readers
from captioning.data.validation import image_data_problem
from captioning.inference import ranking, runners
from captioning.inference.batch import ERROR_MESSAGES, encode_images, pair_error, score_encoded
from captioning.jobs.csv_job import JobSummary
from captioning.jobs.pairs_csv import CsvError, output_columns, scored_row
from captioning.util import memory
from captioning.util.errors import InvalidInput
from captioning.util.logging_setup import root_logger_kept

# Beam's import logs a warning through the root logger; keep that logger as the process had it.
with root_logger_kept():
    import apache_beam as beam
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.ml.inference import base as inference_base
    from apache_beam.ml.inference.base import ModelHandler, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

SOURCE_COLUMNS = ("source_file", "source_row")  # where each output row came from: rows arrive in no order
MAX_ROWS_PER_GROUP = 1024  # rows of one image per element: bounds an element's work, however hot the image
# Image groups per RunInference batch: its images go to encode_image together and its rows fill the 64-text
# score_features calls (the local job reads 256 images at a time).
MIN_GROUPS_PER_BATCH, MAX_GROUPS_PER_BATCH = 32, 256
PROGRESS_EVERY_SECONDS = 30
NAMESPACE = "captioning"
_LOG = logging.getLogger(__name__)
_LOG.setLevel(logging.INFO)  # the progress lines, whatever level the root logger shows

# Beam 2.77 imports `resource` in one try with a torch-only module, so without torch RunInference has no
# `resource` and warns at every model load that it cannot measure memory: give it the module.
if inference_base.resource is None:
    inference_base.resource = resource


class PairRow(NamedTuple):
    source_file: str
    source_row: int  # 1 = the first row after the header
    image_path: str  # resolved against the CSV's folder
    values: dict  # the input row, column -> value ("" when missing)


class ImageGroup(NamedTuple):
    image_path: str
    rows: list  # PairRows of this image
    image_bytes: bytes = None
    error: str = None  # the image's error message (missing, unreadable, unsupported), None when readable


@dataclasses.dataclass
class BeamJob:
    """What the pipeline needs from the command line; the model choices are resolved by the launcher."""

    input_pattern: str
    output: str
    model_dir: str
    score_names: list  # the score columns, csv_job.score_columns
    likelihood_only: bool = False
    rank_by: str = "log_likelihood"
    alpha: float = 1.0
    num_shards: int = 0  # 0: the runner decides; 1: one file, OUT itself


def match_inputs(pattern: str) -> list:
    """The files matching `pattern` (a path or glob on any Beam filesystem), sorted; CsvError when none does."""
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception as error:  # BeamIOError, or the filesystem's own error for a bad bucket
        raise CsvError(f"{pattern}: cannot list it ({str(error).splitlines()[0]})") from None
    paths = sorted(m.path if FileSystems.get_scheme(m.path) else os.path.abspath(m.path) for m in matched)
    if not paths:
        raise CsvError(f"{pattern}: no such file")
    return paths


def read_header(path: str) -> list:
    """The column names of one CSV, read from its first line; CsvError without `image_path,caption`."""
    with FileSystems.open(path) as f:
        first_line = f.readline()
    try:
        fields, _ = readers.parse_csv_rows(readers.decode_text(first_line, path, "CSV file"), path)
    except ValueError as error:
        raise CsvError(str(error)) from None
    return fields


def input_columns(paths: list) -> list:
    """Every input file's columns, in order of first appearance: the output keeps them all."""
    return list(dict.fromkeys(field for path in paths for field in read_header(path)))


def image_location(csv_path: str, image_path: str) -> str:
    """An image path of the CSV as the local job resolves it: relative ones against the CSV's folder."""
    image_path = image_path.strip()
    if FileSystems.get_scheme(image_path) or os.path.isabs(image_path):
        return image_path
    # URLs (gs://bucket/dir/pairs.csv) join with "/" on every platform; local paths the platform's way.
    paths = posixpath if FileSystems.get_scheme(csv_path) else os.path
    return paths.join(paths.dirname(csv_path), image_path)


def read_rows(path: str):
    """The PairRows of one CSV file (read whole: split a large input into many files)."""
    with FileSystems.open(path) as f:
        text = readers.decode_text(f.read(), path, "CSV file")
    _, rows = readers.parse_csv_rows(text, path)
    for number, values in enumerate(rows, start=1):
        yield PairRow(path, number, image_location(path, values["image_path"]), values)


def image_groups(keyed, max_rows: int = MAX_ROWS_PER_GROUP):
    """(image path, its rows) -> ImageGroups of at most `max_rows` rows each."""
    image_path, rows = keyed
    Metrics.counter(NAMESPACE, "distinct_images").inc()
    group = []
    for row in rows:
        group.append(row)
        if len(group) == max_rows:
            yield ImageGroup(image_path, group)
            group = []
    if group:
        yield ImageGroup(image_path, group)


def read_image(group: ImageGroup) -> ImageGroup:
    """The group with its image's bytes, or with the error the local job gives that image."""
    try:
        # Images are never decompressed by extension (Beam's default would for .gz, .bz2, ...).
        with FileSystems.open(group.image_path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
    except Exception:  # not found, a folder (an empty image_path), no access: the local job's "missing image"
        return group._replace(error=ERROR_MESSAGES["missing_image"])
    problem = image_data_problem(io.BytesIO(data))
    return group._replace(image_bytes=data, error=problem and ERROR_MESSAGES[problem])


def score_image_groups(model, groups: list, job: BeamJob) -> list:
    """Output rows (dicts of the output columns) of every row of `groups`: each readable image encoded once, all
    the rows scored together in batches of similar length, as captioning.inference.batch.score_pairs does."""
    encoded = iter(encode_images(model, [group.image_bytes for group in groups if group.error is None]))
    pairs = []  # (PairRow, its image's features or None, its error or None)
    for group in groups:
        features = next(encoded) if group.error is None else None
        image_error = group.error or (ERROR_MESSAGES["unreadable_image"] if features is None else None)
        pairs += [(row, features, pair_error(image_error, row.values["caption"])) for row in group.rows]
    good = [i for i, (_, _, error) in enumerate(pairs) if error is None]
    scores = (
        score_encoded(
            model,
            [pairs[i][1] for i in good],
            [pairs[i][0].values["caption"] for i in good],
            likelihood_only=job.likelihood_only,
        )
        if good
        else {}
    )
    if job.rank_by == "debiased" and good:
        scores["debiased"] = ranking.ranking_scores(scores, job.rank_by, job.alpha)
    position = {row_index: k for k, row_index in enumerate(good)}
    output = []
    for i, (row, _, error) in enumerate(pairs):
        row_scores = {name: values[position[i]] for name, values in scores.items()} if i in position else {}
        output.append(
            {
                **scored_row(row.values, error, row_scores, job.score_names),
                "source_file": row.source_file,
                "source_row": row.source_row,
            }
        )
    Metrics.counter(NAMESPACE, "images_encoded").inc(sum(group.error is None for group in groups))
    Metrics.counter(NAMESPACE, "pairs_scored").inc(len(good))
    Metrics.counter(NAMESPACE, "rows_with_errors").inc(len(pairs) - len(good))
    return output


class PairScoringHandler(ModelHandler):
    """RunInference's model handler: the SavedModel (LocalModel) loaded once per worker process and shared by
    its threads; each batch of ImageGroups scored by score_image_groups."""

    def __init__(self, job: BeamJob):
        super().__init__(min_batch_size=MIN_GROUPS_PER_BATCH, max_batch_size=MAX_GROUPS_PER_BATCH)
        self.job = job
        self._scored, self._last_log = 0, None  # per copy: each worker thread unpickles its own

    def load_model(self):
        return runners.LocalModel(self.job.model_dir)

    def run_inference(self, batch, model, inference_args=None):
        output = score_image_groups(model, list(batch), self.job)
        self._log_progress(len(output))
        return output

    def _log_progress(self, rows: int) -> None:
        """A log line now and then per worker (the runner's log: the terminal here, Cloud Logging on Dataflow)."""
        self._scored += rows
        now = time.monotonic()
        if self._last_log is None:
            self._last_log = now
        elif now - self._last_log >= PROGRESS_EVERY_SECONDS:
            self._last_log = now
            _LOG.info("worker %d/%s: %d rows scored so far", os.getpid(), threading.current_thread().name, self._scored)

    def get_num_bytes(self, batch) -> int:
        # RunInference's default pickles the whole batch just to count its bytes.
        return sum(len(group.image_bytes or b"") for group in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


def csv_line(values: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def output_files(output: str, num_shards: int) -> tuple:
    """(prefix, shard template, suffix) of WriteToText: OUT-00000-of-000NN.csv shards, or OUT itself."""
    prefix = output[: -len(".csv")] if output.endswith(".csv") else output
    return prefix, "" if num_shards == 1 else "-SSSSS-of-NNNNN", ".csv"


def build_pipeline(pipeline: beam.Pipeline, job: BeamJob, paths: list, fields: list) -> None:
    columns = [*output_columns(fields, job.score_names), *SOURCE_COLUMNS]
    prefix, template, suffix = output_files(job.output, job.num_shards)
    _ = (
        pipeline
        | "Files" >> beam.Create(paths)
        | "Rows" >> beam.FlatMap(read_rows)
        | "ByImage" >> beam.Map(lambda row: (row.image_path, row))
        | "GroupByImage" >> beam.GroupByKey()
        | "ImageGroups" >> beam.FlatMap(image_groups)
        | "Spread" >> beam.Reshuffle()
        | "ReadImages" >> beam.Map(read_image)
        | "Score" >> RunInference(PairScoringHandler(job))
        | "CsvLines" >> beam.Map(lambda row: csv_line([row.get(column, "") for column in columns]))
        | "Write"
        >> beam.io.WriteToText(
            prefix,
            file_name_suffix=suffix,
            num_shards=job.num_shards,
            shard_name_template=template,
            header=csv_line(columns),
        )
    )


def job_metrics(result) -> dict:
    """The job's counters by name, and the totals and counts of its distributions as NAME_total and NAME_count
    (RunInference's inference_batch_latency_micro_secs, load_model_latency_milli_secs); committed values where
    the runner has them, else attempted."""
    found = {}
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    for kind in ("counters", "distributions"):
        for metric in query[kind]:
            value = metric.committed if metric.committed is not None else metric.attempted
            values = {"": value} if kind == "counters" else {"_total": value.sum, "_count": value.count}
            for suffix, number in values.items():
                name = metric.key.metric.name + suffix
                found[name] = found.get(name, 0) + (number or 0)
    return found


class PipelineSetupError(InvalidInput):
    """Beam's options name an unknown runner or option."""


def make_pipeline(pipeline_args: list) -> beam.Pipeline:
    """A Pipeline from Beam's own options (--runner=..., --direct_num_workers=..., --project=...); an unknown
    runner or option is a PipelineSetupError rather than a warning Beam logs and ignores."""
    options = PipelineOptions(pipeline_args)
    unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options()))
    if unknown:
        raise PipelineSetupError(f"unknown option --{unknown[0]} (neither this program's flag nor Beam's)")
    try:
        return beam.Pipeline(options=options)
    except (ValueError, ImportError) as error:  # an unknown runner, Dataflow's option checks, a missing extra
        raise PipelineSetupError(" ".join(line.strip() for line in str(error).splitlines() if line.strip())) from None


def run_beam_job(pipeline: beam.Pipeline, job: BeamJob, paths: list, fields: list) -> tuple:
    """Runs the job on `paths` (match_inputs) with `fields` (input_columns) to the end -> (JobSummary,
    job_metrics)."""
    started = time.perf_counter()
    build_pipeline(pipeline, job, paths, fields)
    result = pipeline.run()
    result.wait_until_finish()
    found = job_metrics(result)
    errors = found.get("rows_with_errors", 0)
    summary = JobSummary(
        found.get("pairs_scored", 0) + errors,
        errors,
        found.get("images_encoded", 0),
        time.perf_counter() - started,
        memory.peak_memory_mb(),
    )
    return summary, found
