"""Export a trained Captioner as a versioned SavedModel that stock TF Serving loads as it is.

Image decoding and tokenization run inside the graph; only core TensorFlow ops are used and nothing is
XLA-compiled (TF Serving disables XLA). Each signature is a graph function of ScoringModule named as in
captioning.export.signatures, the one list of signatures (its table is docs/architecture.md's), whose inputs
give the function's input_signature.

generate_caption's cost grows with beam_size (B * beam_size hypotheses, each re-decoded every step), so the graph
refuses a beam_size above MAX_BEAM_SIZE, and a max_length above the model's maximum, with INVALID_ARGUMENT before
it allocates anything: stock TF Serving is bounded as well as the project's server. Every signature that takes
image_bytes refuses an image of more than captioning.data.images.MAX_IMAGE_PIXELS pixels the same way (a GIF
frame measured at its own size), and bytes the decoder would take whose size cannot be read first.
"""

import os
import shutil

import tensorflow as tf

from captioning.data.images import decode_batch
from captioning.data.text import Tokenizer
from captioning.export import layout, signatures
from captioning.model import generation, scoring

# Widest beam generate_caption runs; the web page's describe offers at most 8. Stored in the graph as a constant.
MAX_BEAM_SIZE = 32


def _inputs(name: str) -> list:
    """The input_signature of signature `name`: its registry inputs, in order, every dimension of any size."""
    return [tf.TensorSpec([None] * len(tensor.shape), tensor.dtype) for tensor in signatures.SIGNATURES[name].inputs]


class ScoringModule(tf.Module):
    """The scoring graph around an in-memory model; the same object is exported and used in memory."""

    def __init__(self, model, vocabulary):
        super().__init__()
        self.model = model
        self.tokenizer = Tokenizer(vocabulary, model.config.max_length)
        self.image_size = model.config.image_size

    def _tokenize(self, text):
        tokens = self.tokenizer(text)
        no_words = tf.reduce_any(tokens["num_words"] == 0)
        # Decode only as many positions as the longest text needs: the causal decoder gives earlier positions
        # the same values either way, and a batch of short texts then costs what its texts need.
        length = tf.reduce_max(tf.reduce_sum(tf.cast(tokens["mask"], tf.int32), axis=1))
        tokens = {k: v[:, :length] if k in ("input_ids", "target_ids", "mask") else v for k, v in tokens.items()}
        # An empty text is a client error (INVALID_ARGUMENT under TF Serving), not a score.
        with tf.control_dependencies(
            [tf.debugging.Assert(tf.logical_not(no_words), ["text must contain at least one word; got:", text])]
        ):
            return {k: tf.identity(v) for k, v in tokens.items()}

    def _encode(self, image_bytes):
        return self.model.encode_images(decode_batch(image_bytes, self.image_size))

    @staticmethod
    def _assert_row_aligned(signature: str, image_bytes, text, hint: str = ""):
        tf.debugging.assert_equal(
            tf.size(image_bytes),
            tf.size(text),
            message=f"{signature} takes row-aligned pairs: image_bytes and text need the same length{hint}",
        )

    @tf.function(input_signature=_inputs("serving_default"))
    def serving_default(self, image_bytes, text):
        self._assert_row_aligned(
            "serving_default", image_bytes, text, " (use score_matrix for every image against every text)"
        )
        return scoring.pair_scores(self.model, self._encode(image_bytes), self._tokenize(text))

    # serving_default runs the decoder twice (image, then null image for the prior); callers that rank by
    # log_likelihood never read the prior, so these two skip that pass.
    @tf.function(input_signature=_inputs("score_text"))
    def score_text(self, image_bytes, text):
        self._assert_row_aligned("score_text", image_bytes, text)
        return scoring.pair_likelihood_scores(self.model, self._encode(image_bytes), self._tokenize(text))

    @tf.function(input_signature=_inputs("score_text_features"))
    def score_text_features(self, image_features, text):
        return scoring.pair_likelihood_scores(
            self.model, tf.cast(image_features, self.model.compute_dtype), self._tokenize(text)
        )

    @tf.function(input_signature=_inputs("score_matrix"))
    def score_matrix(self, image_bytes, text):
        return scoring.matrix_scores(self.model, self._encode(image_bytes), self._tokenize(text))

    @tf.function(input_signature=_inputs("encode_image"))
    def encode_image(self, image_bytes):
        return {"image_features": tf.cast(self._encode(image_bytes), tf.float32)}

    @tf.function(input_signature=_inputs("score_features"))
    def score_features(self, image_features, text):
        return scoring.pair_scores(self.model, tf.cast(image_features, self.model.compute_dtype), self._tokenize(text))

    @tf.function(input_signature=_inputs("embed_image"))
    def embed_image(self, image_bytes):
        return {"embedding": scoring.image_embeddings(self.model, self._encode(image_bytes))}

    @tf.function(input_signature=_inputs("embed_text"))
    def embed_text(self, text):
        return {"embedding": scoring.text_embeddings(self.model, self._tokenize(text))}

    @tf.function(input_signature=_inputs("cross_attention"))
    def cross_attention(self, image_bytes, text):
        self._assert_row_aligned("cross_attention", image_bytes, text)
        tokens = self._tokenize(text)
        words = tf.where(tokens["mask"] > 0, tf.gather(self.tokenizer.vocab, tokens["target_ids"]), "")
        return {"token": words, **scoring.token_attention(self.model, self._encode(image_bytes), tokens)}

    @tf.function(input_signature=_inputs("generate_caption"))
    def generate_caption(self, image_bytes, beam_size, max_length, length_penalty):
        max_words = self.model.config.max_length - 1  # one decoder position is [start]
        checks = [
            tf.debugging.assert_positive(beam_size, message="beam_size must be at least 1"),
            tf.debugging.assert_less_equal(
                beam_size, MAX_BEAM_SIZE, message=f"beam_size must be at most {MAX_BEAM_SIZE} (MAX_BEAM_SIZE)"
            ),
            tf.debugging.assert_less_equal(
                max_length,
                max_words,
                message=f"max_length must be at most {max_words}, the model's longest "
                "caption in words (0: that maximum)",
            ),
        ]
        # Everything below depends on the checks, so nothing is decoded or allocated before they pass.
        with tf.control_dependencies(checks):
            image_bytes, beam_size = tf.identity(image_bytes), tf.identity(beam_size)
        result = generation.generate(self.model, self._encode(image_bytes), beam_size, max_length, length_penalty)
        shape = tf.shape(result["tokens"])
        captions = self.tokenizer.detokenize(tf.reshape(result["tokens"], [-1, shape[2]]))
        return {**result, "caption": tf.reshape(captions, shape[:2])}

    def signatures(self) -> dict:
        """Every registry signature this model has (embed_* only with the contrastive head)."""
        return {
            signature.name: getattr(self, signature.name).get_concrete_function()
            for signature in signatures.for_model(head=bool(self.model.contrastive))
        }


def next_version(export_base: str) -> int:
    versions = [int(d) for d in os.listdir(export_base) if d.isdigit()] if os.path.isdir(export_base) else []
    return max(versions, default=0) + 1


def export_saved_model(module: ScoringModule, export_base: str, extra_files=(), version: int = None) -> str:
    """Writes `<export_base>/<version>/` (the next integer by default) and returns its path.

    The SavedModel is written to a hidden temporary directory and renamed into place, so TF Serving, which
    polls `export_base`, never sees a half-written version.
    """
    os.makedirs(export_base, exist_ok=True)
    version = version or next_version(export_base)
    final = os.path.join(export_base, str(version))
    temporary = os.path.join(export_base, layout.temporary_name(version, os.getpid()))
    shutil.rmtree(temporary, ignore_errors=True)
    tf.saved_model.save(module, temporary, signatures=module.signatures())
    os.makedirs(os.path.join(temporary, layout.EXTRA_FILES_DIR))
    for path in extra_files:
        shutil.copy(path, os.path.join(temporary, layout.EXTRA_FILES_DIR))
    os.rename(temporary, final)
    return final
