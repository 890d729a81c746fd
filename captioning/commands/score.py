"""Score how well texts describe an image: the caption log-likelihood of each text given the image.

    python get_similarity_score.py --image_path cat.jpg --text "a cat on a sofa"
    python get_similarity_score.py --image_path cat.jpg --text "a cat" --text "a dog" --json
    python get_similarity_score.py --image_path cat.jpg --text "a cat" --server localhost:8500
    python get_similarity_score.py --csv pairs.csv --output scored.csv --figures_dir figures/
    python get_similarity_score.py --csv 'pairs-*.csv' --output scored.csv --runner DirectRunner \
        --direct_num_workers=2 --direct_running_mode=multi_threading
    python get_similarity_score.py --image_path cat.jpg --generate --beam_size 5
    python get_similarity_score.py --image_path cat.jpg --labels cat,dog,car

Locally it loads the newest SavedModel under --model_dir; with --server it asks a TF Serving (or the project's
own) PredictionService over gRPC. Both print the same numbers. With --runner, the --csv job runs as an Apache
Beam pipeline (captioning.jobs.beam_pipeline) and Beam's own options (--name=value) pass through to it. Bad
input exits with code 2 and one line.
"""

import dataclasses
import json
import os
import sys

from absl import flags

from captioning.data.validation import caption_problem, image_problem
from captioning.export import layout
from captioning.inference import ranking, runners, zero_shot
from captioning.inference.rows import run_in_batches
from captioning.inference.zero_shot import DEFAULT_TEMPLATE
from captioning.jobs.csv_job import SCORE_COLUMNS, run_csv_job, score_columns
from captioning.jobs.pairs_csv import read_pairs_csv
from captioning.util import cli
from captioning.util.errors import CaptioningError, InvalidInput

FLAGS = flags.FLAGS
flags.DEFINE_string("image_path", None, "Image file (JPEG, PNG, BMP or GIF).")
flags.DEFINE_multi_string("text", [], "Text to score; repeat to rank several texts for the image.")
flags.DEFINE_string("model_dir", os.path.join("checkpoints", "export"), "Export base directory or version directory.")
flags.DEFINE_string("server", None, "HOST:PORT of a TF Serving-compatible gRPC server; scores remotely.")
flags.DEFINE_string("model_name", "captioner", "Model name on the server.")
flags.DEFINE_integer(
    "model_version",
    None,
    "With --server: pin this model version (default: the newest), e.g. "
    "so a long --csv job does not straddle a version swap.",
)
flags.DEFINE_string("signature", "serving_default", "Signature that scores --text pairs.")
flags.DEFINE_enum(
    "rank_by",
    ranking.AUTO,
    [ranking.AUTO, *ranking.SCORES],
    "Score that orders texts and labels and that figures show; auto = debiased when the model's "
    "evaluation stored an alpha that helps, else log_likelihood.",
)
flags.DEFINE_float(
    "alpha",
    None,
    "Debiasing weight of the text prior (debiased = log_likelihood - alpha * prior); "
    "default: the alpha stored with the model, else 1 (= pmi).",
)
flags.DEFINE_bool("json", False, "Print machine-readable JSON.")
flags.DEFINE_string(
    "attention_figure",
    None,
    "With one --text: draw where the model looks on the image for each "
    "word of it (PNG), from the cross_attention signature.",
)
flags.DEFINE_bool(
    "likelihood_only",
    False,
    "Skip the prior pass (the score_text signatures; about half the decoder "
    "work): no prior_log_likelihood or pmi. Ranks by log_likelihood or "
    "mean_log_prob only.",
)

flags.DEFINE_string(
    "csv", None, "Score every row of a CSV with image_path,caption columns (paths may be relative to the CSV's folder)."
)
flags.DEFINE_string("output", None, "With --csv: where to write the rows with their scores and an error column.")
flags.DEFINE_string("figures_dir", None, "With --csv: write image_captions.jpg and similarity_matrix.jpg here.")
flags.DEFINE_string("image_captions_figure", None, "With --csv: each image with its caption and score (JPEG).")
flags.DEFINE_string("similarity_matrix_figure", None, "With --csv: every image against every caption (JPEG).")
flags.DEFINE_string(
    "runner",
    None,
    "With --csv: run the job as an Apache Beam pipeline on this runner (DirectRunner, "
    "DataflowRunner, FlinkRunner, SparkRunner, PortableRunner); --csv may then be a "
    "glob on any Beam filesystem, and Beam's own options (--name=value) pass through.",
)
flags.DEFINE_integer(
    "num_shards",
    0,
    "With --runner: output shards OUT-00000-of-000NN.csv (0: the runner decides); 1 writes the single file OUT.",
)

flags.DEFINE_bool("generate", False, "Caption --image_path instead of scoring texts.")
flags.DEFINE_integer("beam_size", 3, "Beam width for --generate (1 = greedy); that many captions are printed.")
flags.DEFINE_integer("max_length", 0, "Most words in a generated caption (0: as many as the model allows).")
flags.DEFINE_float("length_penalty", 0.0, "Beams rank by log_likelihood / num_tokens ** length_penalty.")

flags.DEFINE_list("labels", [], "Rank these labels for --image_path (zero-shot), e.g. cat,dog,car.")
flags.DEFINE_string("labels_file", None, "Labels one per line, for zero-shot ranking.")
flags.DEFINE_string("prompt_template", DEFAULT_TEMPLATE, "Prompt each label is put into; {} marks the label.")


cli.define_flag_validators(
    ("beam_size", lambda value: value >= 1, "must be at least 1"),
    ("max_length", lambda value: value >= 0, "must be 0 (as many words as the model allows) or more"),
    ("model_version", lambda value: value >= 1, "must be a version number (1 or more)"),
    ("labels_file", os.path.isfile, "must name an existing file"),
)


class InputError(InvalidInput):
    """Bad user input: reported in one line with exit code 2."""


_PROBLEMS = {
    "missing_image": "no such file",
    "unreadable_image": "not a readable image",
    "unsupported_format": "unsupported image format (use JPEG, PNG, BMP or GIF)",
}


def read_image(image_path):
    if not image_path:
        raise InputError("--image_path is required")
    problem = image_problem(image_path)
    if problem:
        raise InputError(f"{image_path}: {_PROBLEMS[problem]}")
    with open(image_path, "rb") as f:
        return f.read()


def read_inputs(image_path, texts):
    image_bytes = read_image(image_path)
    if not texts:
        raise InputError("give at least one --text (or --csv, --generate, --labels)")
    for text in texts:
        if caption_problem(text):
            raise InputError(f"text {text!r} has no words to score")
    return image_bytes


def open_model():
    return runners.open_model(FLAGS.model_dir, FLAGS.server, FLAGS.model_name, FLAGS.model_version)


def ranking_choice(model):
    """(score name, alpha) from --rank_by, --alpha and the ranking.json stored with a local model."""
    if FLAGS.likelihood_only:  # the stored alpha is no use without the prior
        if FLAGS.rank_by not in (ranking.AUTO, *ranking.LIKELIHOOD_SCORES) or FLAGS.alpha is not None:
            raise InputError("--likelihood_only scores no prior: rank by log_likelihood or mean_log_prob")
        return (ranking.LIKELIHOOD_SCORES[0] if FLAGS.rank_by == ranking.AUTO else FLAGS.rank_by), 1.0
    return ranking.resolve(FLAGS.rank_by, FLAGS.alpha, ranking.read_ranking(model.extra_file(layout.RANKING_FILE)))


def print_table(columns, rows):
    """Rows of dicts as aligned columns, floats to 4 decimals; the last column (the text) left-aligned."""
    cells = [[f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(columns[:-1])]
    for line in [columns, *cells]:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) + f"  {line[-1]}")


def score_texts():
    image_bytes = read_inputs(FLAGS.image_path, FLAGS.text)
    if FLAGS.attention_figure and len(FLAGS.text) != 1:
        raise InputError("--attention_figure draws one text: give exactly one --text")
    model = open_model()
    if FLAGS.attention_figure:
        draw_attention(model, image_bytes, FLAGS.text[0], FLAGS.attention_figure)
    rank_by, alpha = ranking_choice(model)
    texts = list(FLAGS.text)
    pairs = {"image_bytes": [image_bytes] * len(texts), "text": texts}
    scores = run_in_batches(model, "score_text" if FLAGS.likelihood_only else FLAGS.signature, pairs)
    ranked = ranking.ranking_scores(scores, rank_by, alpha)  # says so when the model lacks the score asked for
    if rank_by == "debiased":
        scores["debiased"] = ranked
    names = [name for name in (*SCORE_COLUMNS, "contrastive", "debiased") if name in scores]
    rows = [{"text": text, **{name: scores[name][i].item() for name in names}} for i, text in enumerate(texts)]
    if len(rows) > 1:
        rows = [rows[i] for i in sorted(range(len(rows)), key=lambda i: -ranked[i])]
    if FLAGS.json:
        print(json.dumps({"image_path": FLAGS.image_path, "results": rows}, indent=2))
    elif len(rows) == 1:
        for name, value in rows[0].items():
            print(f"{name:>22}: {value:.4f}" if isinstance(value, float) else f"{name:>22}: {value}")
    else:
        for rank, row in enumerate(rows, start=1):
            row["rank"] = rank
            row["text"] += " (truncated)" if row.get("truncated") else ""
        optional = [name for name in ("pmi", "contrastive", "debiased") if name in scores]
        print_table(["rank", "log_likelihood", "mean_log_prob", *optional, "text"], rows)


def draw_attention(model, image_bytes, text, path):
    from captioning.util.figures import draw_cross_attention  # matplotlib: only when a figure is asked for

    result = model.run("cross_attention", {"image_bytes": [image_bytes], "text": [text]})
    num_tokens = int(sum(1 for token in result["token"][0] if token))
    tokens = [token.decode("utf-8") for token in result["token"][0, :num_tokens]]
    draw_cross_attention(
        path, image_bytes, text, tokens, result["log_prob"][0, :num_tokens], result["attention"][0, :, :num_tokens]
    )
    print(f"wrote {path}", file=sys.stderr)


def figure_paths():
    directory = FLAGS.figures_dir
    return (
        FLAGS.image_captions_figure or (directory and os.path.join(directory, "image_captions.jpg")),
        FLAGS.similarity_matrix_figure or (directory and os.path.join(directory, "similarity_matrix.jpg")),
    )


def check_csv_output():
    if not FLAGS.output:
        raise InputError("--csv needs --output (where to write the scored rows)")
    if os.path.abspath(FLAGS.output) == os.path.abspath(FLAGS.csv):
        raise InputError("--output must not overwrite the input --csv")


def score_csv():
    check_csv_output()
    pairs = read_pairs_csv(FLAGS.csv)  # a bad CSV fails before the model loads
    model = open_model()
    rank_by, alpha = ranking_choice(model)
    captions_figure, matrix_figure = figure_paths()
    summary = run_csv_job(
        model,
        pairs,
        FLAGS.output,
        rank_by,
        alpha,
        captions_figure,
        matrix_figure,
        likelihood_only=FLAGS.likelihood_only,
    )
    print_csv_summary([FLAGS.output, *summary.figures], summary)


def print_csv_summary(written, summary, **extra):
    if FLAGS.json:
        print(json.dumps({"output": FLAGS.output, **dataclasses.asdict(summary), **extra}, indent=2))
    else:
        print("wrote " + ", ".join(written))
        print(summary.line())


def score_csv_on_beam(pipeline_args):
    """--csv with --runner: the same job as a Beam pipeline; `pipeline_args` are the flags absl did not know."""
    check_csv_output()
    if FLAGS.server:
        raise InputError("--runner scores with the SavedModel on every worker: drop --server")
    if any(figure_paths()):
        raise InputError("figures are drawn by the local --csv job only: drop --runner or the figure flags")
    if FLAGS.num_shards < 0:
        raise InputError("--num_shards must be 0 (the runner decides) or more")
    # Imported here, not at the top: importing Beam adds seconds to every other mode.
    from captioning.jobs import beam_pipeline

    try:
        pipeline = beam_pipeline.make_pipeline([*pipeline_args, f"--runner={FLAGS.runner}"])
    except beam_pipeline.PipelineSetupError as error:
        raise InputError(str(error)) from None
    paths = beam_pipeline.match_inputs(FLAGS.csv)
    fields = beam_pipeline.input_columns(paths)  # a file without image_path,caption fails before the model loads
    model = open_model()  # here for the ranking choice and the model's outputs; each worker loads its own
    rank_by, alpha = ranking_choice(model)
    signature = "score_text_features" if FLAGS.likelihood_only else "score_features"
    contrastive = "contrastive" in model.output_names(signature)
    del model
    if rank_by == "contrastive" and not contrastive:  # the local job finds this out after scoring everything
        raise InputError("--rank_by contrastive: this model has no contrastive head")
    job = beam_pipeline.BeamJob(
        FLAGS.csv,
        FLAGS.output,
        FLAGS.model_dir,
        score_columns(FLAGS.likelihood_only, contrastive, rank_by == "debiased"),
        FLAGS.likelihood_only,
        rank_by,
        alpha,
        FLAGS.num_shards,
    )
    summary, metrics = beam_pipeline.run_beam_job(pipeline, job, paths, fields)
    prefix, template, suffix = beam_pipeline.output_files(FLAGS.output, FLAGS.num_shards)
    print_csv_summary(
        [prefix + template.replace("SSSSS", "*").replace("NNNNN", "*") + suffix], summary, metrics=metrics
    )


def generate():
    image_bytes = read_image(FLAGS.image_path)
    import numpy as np

    from captioning.inference.captions import generate_with_signature  # imports TensorFlow: after the input checks

    result = generate_with_signature(
        open_model(), [image_bytes], FLAGS.beam_size, FLAGS.max_length, FLAGS.length_penalty
    )
    rows = [
        {
            "rank": k + 1,
            "caption": caption,
            "log_likelihood": result["log_likelihood"][0, k].item(),
            "num_tokens": result["num_tokens"][0, k].item(),
            "mean_log_prob": (result["log_likelihood"][0, k] / result["num_tokens"][0, k]).item(),
        }
        for k, caption in enumerate(result["caption"][0])
        if np.isfinite(result["log_likelihood"][0, k])
    ]  # a tiny vocabulary may allow fewer captions
    if FLAGS.json:
        print(json.dumps({"image_path": FLAGS.image_path, "beam_size": FLAGS.beam_size, "captions": rows}, indent=2))
    else:
        print_table(["rank", "log_likelihood", "mean_log_prob", "caption"], rows)


def rank_labels():
    image_bytes = read_image(FLAGS.image_path)
    labels = zero_shot.read_labels(FLAGS.labels, FLAGS.labels_file)
    model = open_model()
    rank_by, alpha = ranking_choice(model)
    rows = zero_shot.rank_labels(model, [image_bytes], labels, FLAGS.prompt_template, rank_by, alpha)[0]
    if FLAGS.json:
        print(
            json.dumps({"image_path": FLAGS.image_path, "rank_by": rank_by, "alpha": alpha, "results": rows}, indent=2)
        )
        return
    for rank_number, row in enumerate(rows, start=1):
        row["rank"] = rank_number
    print(f"ranked by {rank_by}" + (f" (alpha {alpha:g})" if rank_by == "debiased" else ""))
    print_table(
        [
            "rank",
            "score",
            "confidence",
            "log_likelihood",
            "pmi",
            *(["contrastive"] * ("contrastive" in rows[0])),
            "label",
        ],
        rows,
    )
    unknown = sorted({word for row in rows for word in row["unknown_words"] or ()})
    if unknown:
        print(
            f"warning: the model does not know {', '.join(map(repr, unknown))}: each reads as [unk], so those "
            "labels' scores mean little"
        )


def choose_mode():
    modes = {"csv": bool(FLAGS.csv), "generate": FLAGS.generate, "labels": bool(FLAGS.labels or FLAGS.labels_file)}
    chosen = [name for name, on in modes.items() if on]
    if len(chosen) > 1 or (chosen and FLAGS.text):
        raise InputError("choose one of --text, --csv, --generate and --labels")
    if chosen and FLAGS.attention_figure:
        raise InputError("--attention_figure goes with --text")
    if chosen != ["csv"] and (FLAGS.figures_dir or FLAGS.image_captions_figure or FLAGS.similarity_matrix_figure):
        raise InputError("figures are drawn for a --csv job only")
    if chosen == ["csv"] and FLAGS.image_path:
        raise InputError("--csv takes its images from the CSV; drop --image_path")
    if FLAGS.runner and chosen != ["csv"]:
        raise InputError("--runner runs the --csv job: add --csv and --output")
    return {"csv": score_csv, "generate": generate, "labels": rank_labels}[chosen[0]] if chosen else score_texts


def main(argv):
    try:
        if FLAGS.runner:
            choose_mode()  # the mode checks, then the pipeline
            score_csv_on_beam(argv[1:])  # the flags absl did not know are Beam's pipeline options
            return 0
        if len(argv) > 1:
            raise InputError(cli.unexpected_arguments(argv[1:]))
        choose_mode()()
    except OSError as error:  # a file that cannot be read or written
        return cli.fail(error)
    except CaptioningError:
        raise  # cli.run tells it in one line, with its kind's exit code
    except Exception as error:  # a model's own error: one line, not a traceback
        return cli.fail(f"scoring failed: {error}", exit_code=1)
    return 0


def run() -> None:
    """The `captioning-score` command (also `python get_similarity_score.py`)."""
    cli.run(main, pass_unknown_flags=True)


if __name__ == "__main__":
    run()
