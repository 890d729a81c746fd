"""Every signature of the exported SavedModel, listed once: its inputs, outputs, whether TF Serving can batch it,
whether it needs the contrastive head, and what it is for.

The export builds its input signatures and its list from here (export/saved_model.py), the server's batching set
is checked against it (serving/batching.py), and tests hold the exported model, the test double and the table in
docs/architecture.md (`markdown_table`, written by scripts/signature_table.py) to it. Free of TensorFlow, so the
server's option checks and the docs script import it cheaply.

Shapes name each dimension by its role: B row-aligned pairs, N images, M texts, G grid cells, D feature size,
K beams, T tokens; () is a scalar.
"""

import dataclasses

# The dtype names are TensorFlow's (tf.as_dtype accepts them); strings are DT_STRING.
DTYPES = ("string", "float32", "int32", "bool")


@dataclasses.dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple  # role of each dimension
    head_only: bool = False  # present only when the model has the contrastive head
    note: str = ""

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"{self.name}: dtype {self.dtype!r} is not one of {DTYPES}")


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple
    outputs: tuple
    purpose: str
    batches: bool  # outputs are row-aligned with every input: TF Serving's --enable_batching can merge calls
    needs_head: bool = False  # exported only for a model with the contrastive head (contrastive_dim > 0)

    def output_names(self, head: bool = True) -> list:
        return [output.name for output in self.outputs if head or not output.head_only]


def _row_scores(rows: str, prior: bool) -> tuple:
    """serving_default's outputs over `rows` (without the prior pass: score_text's), in the order of the scored
    CSV's columns (jobs/csv_job.py, docs/reference.md)."""
    prior_scores = (Tensor("prior_log_likelihood", "float32", (rows,)), Tensor("pmi", "float32", (rows,)))
    return (
        Tensor("log_likelihood", "float32", (rows,)),
        Tensor("num_tokens", "int32", (rows,)),
        Tensor("mean_log_prob", "float32", (rows,)),
        Tensor("perplexity", "float32", (rows,)),
        *(prior_scores if prior else ()),
        Tensor("unknown_tokens", "int32", (rows,)),
        Tensor("truncated", "bool", (rows,)),
        Tensor("contrastive", "float32", (rows,), head_only=True),
    )


_PAIRS = (Tensor("image_bytes", "string", ("B",)), Tensor("text", "string", ("B",)))
_FEATURES = (Tensor("image_features", "float32", ("B", "G", "D")), Tensor("text", "string", ("B",)))
_IMAGES = (Tensor("image_bytes", "string", ("N",)),)

SIGNATURES = {
    signature.name: signature
    for signature in (
        Signature("serving_default", _PAIRS, _row_scores("B", prior=True), "every score of each pair", batches=True),
        Signature(
            "score_text",
            _PAIRS,
            _row_scores("B", prior=False),
            "serving_default without the prior pass: one decoder pass instead of two",
            batches=True,
        ),
        Signature(
            "score_matrix",
            (Tensor("image_bytes", "string", ("N",)), Tensor("text", "string", ("M",))),
            (
                Tensor("log_likelihood", "float32", ("N", "M")),
                Tensor("mean_log_prob", "float32", ("N", "M")),
                Tensor("pmi", "float32", ("N", "M")),
                Tensor("contrastive", "float32", ("N", "M"), head_only=True),
            ),
            "every image against every text, each image encoded once",
            batches=False,
        ),
        Signature(
            "encode_image",
            _IMAGES,
            (
                Tensor(
                    "image_features",
                    "float32",
                    ("N", "G", "D"),
                    note="D = 3 × embed_dim: content, context, position; 2 × without a cell context",
                ),
            ),
            "encode once, score many times",
            batches=True,
        ),
        Signature(
            "score_features",
            _FEATURES,
            _row_scores("B", prior=True),
            "serving_default from encode_image's features",
            batches=True,
        ),
        Signature(
            "score_text_features",
            _FEATURES,
            _row_scores("B", prior=False),
            "score_text from encode_image's features",
            batches=True,
        ),
        Signature(
            "embed_image",
            _IMAGES,
            (Tensor("embedding", "float32", ("N", "contrastive_dim"), note="unit length"),),
            "index vectors",
            batches=True,
            needs_head=True,
        ),
        Signature(
            "embed_text",
            (Tensor("text", "string", ("M",)),),
            (Tensor("embedding", "float32", ("M", "contrastive_dim"), note="unit length"),),
            "query vectors",
            batches=True,
            needs_head=True,
        ),
        Signature(
            "cross_attention",
            _PAIRS,
            (
                Tensor("attention", "float32", ("B", "blocks", "T", "G"), note="heads averaged"),
                Tensor("token", "string", ("B", "T"), note='the words then [end], "" on padding'),
                Tensor("log_prob", "float32", ("B", "T")),
            ),
            "where the decoder looked for each token",
            batches=True,
        ),
        Signature(
            "generate_caption",
            (
                Tensor("image_bytes", "string", ("B",)),
                Tensor("beam_size", "int32", ()),
                Tensor("max_length", "int32", (), note="<= 0: the model's"),
                Tensor("length_penalty", "float32", ()),
            ),
            (
                Tensor("caption", "string", ("B", "K"), note="best first"),
                Tensor("log_likelihood", "float32", ("B", "K")),
                Tensor("num_tokens", "int32", ("B", "K")),
                Tensor("tokens", "int32", ("B", "K", "T")),
            ),
            "greedy (K = 1) or beam search in one call",
            batches=False,
        ),
    )
}


def for_model(head: bool) -> list:
    """The signatures a model exports: all of them with the contrastive head, those that do not need it without."""
    return [signature for signature in SIGNATURES.values() if head or not signature.needs_head]


def batchable() -> frozenset:
    return frozenset(name for name, signature in SIGNATURES.items() if signature.batches)


def _tensors_cell(tensors) -> str:
    """Tensors of the same dtype and shape in a row share one description: `a`, `b` float32 [B]; `c` int32 []."""
    groups = []
    for tensor in tensors:
        key = (tensor.dtype, tensor.shape, tensor.head_only, tensor.note)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(tensor.name)
        else:
            groups.append((key, [tensor.name]))
    cells = []
    for (dtype, shape, head_only, note), names in groups:
        shape_text = f"[{', '.join(shape)}]" if shape else "scalar"
        extras = "".join(f" ({text})" for text in (note, "head" * head_only) if text)
        cells.append(f"{', '.join(f'`{name}`' for name in names)} {dtype} {shape_text}{extras}")
    return "; ".join(cells)


def markdown_table() -> str:
    """The signature table of docs/architecture.md."""
    lines = ["| signature | inputs | outputs | for | batches |", "|---|---|---|---|---|"]
    for signature in SIGNATURES.values():
        purpose = signature.purpose + " (head only)" * signature.needs_head
        lines.append(
            f"| `{signature.name}` | {_tensors_cell(signature.inputs)} | {_tensors_cell(signature.outputs)} "
            f"| {purpose} | {'yes' if signature.batches else 'no'} |"
        )
    return "\n".join(lines) + "\n"
