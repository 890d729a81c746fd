"""Score how well texts describe an image: the caption log-likelihood of each text given the image.

    python get_similarity_score.py --image_path cat.jpg --text "a cat on a sofa"
    python get_similarity_score.py --image_path cat.jpg --text "a cat" --text "a dog" --json
    python get_similarity_score.py --image_path cat.jpg --text "a cat" --server localhost:8500

Locally it loads the newest SavedModel under --model_dir; with --server it asks a TF Serving (or the project's
own) PredictionService over gRPC. Both print the same numbers. Bad input exits with code 2 and one line.
"""

import json
import os
import sys

from absl import app, flags

from captioning.data.validation import caption_problem, image_problem

SCORE_NAMES = ("log_likelihood", "num_tokens", "mean_log_prob", "perplexity", "prior_log_likelihood", "pmi",
               "unknown_tokens", "truncated")
FLAGS = flags.FLAGS
flags.DEFINE_string("image_path", None, "Image file (JPEG, PNG, BMP or GIF).")
flags.DEFINE_multi_string("text", [], "Text to score; repeat to rank several texts for the image.")
flags.DEFINE_string("model_dir", os.path.join("checkpoints", "export"), "Export base directory or version directory.")
flags.DEFINE_string("server", None, "HOST:PORT of a TF Serving-compatible gRPC server; scores remotely.")
flags.DEFINE_string("model_name", "captioner", "Model name on the server.")
flags.DEFINE_string("signature", "serving_default", "Signature name on the server.")
flags.DEFINE_enum("rank_by", "log_likelihood", ["log_likelihood", "mean_log_prob", "pmi"],
                  "Score that orders several texts.")
flags.DEFINE_bool("json", False, "Print machine-readable JSON.")


class InputError(ValueError):
    """Bad user input: reported in one line with exit code 2."""


_PROBLEMS = {"missing_image": "no such file", "unreadable_image": "not a readable image",
             "unsupported_format": "unsupported image format (use JPEG, PNG, BMP or GIF)"}


def read_inputs(image_path, texts):
    if not image_path:
        raise InputError("--image_path is required")
    problem = image_problem(image_path)
    if problem:
        raise InputError(f"{image_path}: {_PROBLEMS[problem]}")
    if not texts:
        raise InputError("give at least one --text")
    for text in texts:
        if caption_problem(text):
            raise InputError(f"text {text!r} has no words to score")
    with open(image_path, "rb") as f:
        return f.read()


def make_scorer():
    if FLAGS.server:
        from serving.client import PredictionClient

        return PredictionClient(FLAGS.server, model_name=FLAGS.model_name, signature_name=FLAGS.signature)
    from captioning.saved_model_scorer import SavedModelScorer

    return SavedModelScorer(FLAGS.model_dir)


def rows_of(scores, texts):
    rows = [{"text": text, **{name: scores[name][i].item() for name in SCORE_NAMES if name in scores}}
            for i, text in enumerate(texts)]
    return sorted(rows, key=lambda row: -row[FLAGS.rank_by]) if len(rows) > 1 else rows


def print_rows(rows):
    if len(rows) == 1:
        for name, value in rows[0].items():
            print(f"{name:>22}: {value:.4f}" if isinstance(value, float) else f"{name:>22}: {value}")
        return
    print(f"{'rank':>4}  {'log_likelihood':>14}  {'mean_log_prob':>13}  {'pmi':>8}  text")
    for rank, row in enumerate(rows, start=1):
        note = " (truncated)" if row.get("truncated") else ""
        print(f"{rank:>4}  {row['log_likelihood']:>14.4f}  {row['mean_log_prob']:>13.4f}  {row['pmi']:>8.4f}  "
              f"{row['text']}{note}")


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        image_bytes = read_inputs(FLAGS.image_path, FLAGS.text)
        scorer = make_scorer()
        scores = scorer.score([image_bytes] * len(FLAGS.text), list(FLAGS.text))
    except (InputError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a server or model error: one line, not a traceback
        print(f"error: scoring failed: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    rows = rows_of(scores, FLAGS.text)
    if FLAGS.json:
        print(json.dumps({"image_path": FLAGS.image_path, "results": rows}, indent=2))
    else:
        print_rows(rows)
    return 0


if __name__ == "__main__":
    app.run(main)
