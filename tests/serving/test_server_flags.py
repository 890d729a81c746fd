"""serving.server's limit flags match serving/limits.py: every limit has a flag with the limit's default, and a value
given on the command line reaches the server's options."""

import dataclasses
import json
import os
import subprocess
import sys

from captioning.search.images import ImageLimits
from captioning.search.retrieval import POOR_MATCH_MEAN_LOG_PROB
from serving.limits import RequestLimits, SearchLimits
from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A limit's flag is named after its field, except where the bare name would be ambiguous on the server's command line.
RENAMED = {
    (ImageLimits, "max_pixels"): "max_image_pixels",
    (ImageLimits, "max_frames"): "max_image_frames",
    (SearchLimits, "max_results"): "max_search_results",
    (SearchLimits, "max_candidates"): "max_search_candidates",
}

PROGRAM = """
import dataclasses, json, sys
from absl import flags
import serving.server as server
flags.FLAGS(["server", *sys.argv[1:]])
options = server.options_from_flags()
print(json.dumps({"defaults": {name: flags.FLAGS[name].default for name in flags.FLAGS},
                  "request": dataclasses.asdict(options.limits), "search": dataclasses.asdict(options.search.limits),
                  "poor_match": options.search.poor_match_mean_log_prob}))
"""


def limit_flags():
    """(flag name, limits class, field) of every limit."""
    for limits_class in (RequestLimits, ImageLimits, SearchLimits):
        for field in dataclasses.fields(limits_class):
            if field.name != "image":  # RequestLimits.image is ImageLimits, walked on its own
                yield RENAMED.get((limits_class, field.name), field.name), limits_class, field


def test_every_limit_has_a_flag_with_its_default_and_its_value_reaches_the_options(tmp_path):
    given = {name: field.default * 2 for name, _, field in limit_flags()}  # all valid: limits may grow
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PROGRAM,
            "--model_base_path",
            str(tmp_path),
            "--index_dir",
            str(tmp_path / "index"),
            *(f"--{name}={value}" for name, value in given.items()),
            "--poor_match_mean_log_prob=-2.5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name, _, field in limit_flags():
        assert report["defaults"][name] == field.default, name
    assert report["defaults"]["poor_match_mean_log_prob"] == POOR_MATCH_MEAN_LOG_PROB and report["poor_match"] == -2.5
    request, search = report["request"], report["search"]
    image = request.pop("image")
    assert {**request, **image} == {
        field.name: given[name] for name, limits_class, field in limit_flags() if limits_class is not SearchLimits
    }
    assert search == {
        field.name: given[name] for name, limits_class, field in limit_flags() if limits_class is SearchLimits
    }
