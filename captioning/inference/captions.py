"""Captions from an exported model's generate_caption signature (the beam search runs in the graph:
captioning.model.generation)."""

import numpy as np

from captioning.inference.rows import run_in_batches


def generate_with_signature(model, image_bytes, beam_size=3, max_length=0, length_penalty=0.0) -> dict:
    """Captions images with an exported model's generate_caption signature (a captioning.inference.runners model, local
    or remote) -> caption: N lists of K str, best first; log_likelihood [N, K]; num_tokens [N, K]."""
    result = run_in_batches(
        model,
        "generate_caption",
        {"image_bytes": list(image_bytes)},
        beam_size=np.int32(beam_size),
        max_length=np.int32(max_length),
        length_penalty=np.float32(length_penalty),
    )
    return {
        "caption": [[c.decode("utf-8") for c in row] for row in result["caption"]],
        "log_likelihood": result["log_likelihood"],
        "num_tokens": result["num_tokens"],
    }
