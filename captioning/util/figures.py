"""Pictures for people: each image with its caption and score, an image-by-caption heat map (JPEG), where the
model looked for each word of a caption (PNG), and a training run's loss and accuracy curves (PNG).

All are drawn with matplotlib's Agg backend (no screen needed) and written whole or not at all.
"""

import io
import os
import textwrap

import numpy as np
from PIL import Image

from captioning.util import atomic

THUMBNAIL_PIXELS = 96


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thumbnail(path: str) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        return np.asarray(image)


def _save(figure, path: str) -> None:
    with atomic.replaced_on_success(path) as temporary:
        figure.savefig(temporary, dpi=100, pil_kwargs={"quality": 90})  # quality: JPEG only
    _pyplot().close(figure)


def draw_image_captions(
    path: str, image_paths, captions, values, errors, score_name: str, max_pairs: int = 40, columns: int = 4
) -> None:
    """A grid of the first `max_pairs` rows: the image, its caption and its score (or why it has none)."""
    _save(image_captions_figure(image_paths, captions, values, errors, score_name, max_pairs, columns), path)


def image_captions_figure(image_paths, captions, values, errors, score_name: str, max_pairs: int, columns: int):
    shown = min(len(captions), max_pairs)
    rows = max(1, -(-shown // columns))
    plt = _pyplot()
    # Constrained layout leaves room for the title above the first row (tight_layout ignores a figure's title).
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= shown:
            continue
        caption = textwrap.fill(captions[index], 34)
        if errors[index]:
            axis.set_title(f"{caption}\nerror: {errors[index]}", fontsize=8, color="firebrick")
            continue
        axis.imshow(_thumbnail(image_paths[index]))
        axis.set_title(f"{caption}\n{score_name} = {values[index]:.2f}", fontsize=8)
    if shown < len(captions):
        figure.suptitle(f"first {shown} of {len(captions)} rows")
    return figure


def draw_similarity_matrix(path: str, image_paths, texts, matrix: np.ndarray, score_name: str) -> None:
    """Heat map of matrix[i, j] = score of image i with text j; rows labelled with a thumbnail and file name,
    columns with the text, and each cell with its value when the map is small enough to read them."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    plt = _pyplot()
    num_images, num_texts = matrix.shape
    figure, axis = plt.subplots(figsize=(4 + 0.9 * num_texts, 2 + 0.9 * num_images))
    heat = axis.imshow(matrix, cmap="viridis", aspect="auto")
    figure.colorbar(heat, ax=axis, label=score_name)
    axis.set_xticks(
        range(num_texts), [textwrap.shorten(t, 40, placeholder="…") for t in texts], rotation=60, ha="right", fontsize=8
    )
    axis.set_yticks(range(num_images), [os.path.basename(p) for p in image_paths], fontsize=8)
    axis.tick_params(axis="y", pad=48)  # room for the thumbnails between the names and the map
    for row, image_path in enumerate(image_paths):
        pixels = _thumbnail(image_path)
        thumbnail = OffsetImage(pixels, zoom=40 / max(pixels.shape[:2]))  # about 40 points whatever the image size
        axis.add_artist(
            AnnotationBbox(
                thumbnail,
                (-0.5, row),
                xybox=(-26, 0),
                xycoords="data",
                boxcoords="offset points",
                frameon=False,
                annotation_clip=False,
            )
        )
    if num_images * num_texts <= 400:
        threshold = matrix.mean()
        for (row, column), value in np.ndenumerate(matrix):
            axis.text(
                column,
                row,
                f"{value:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value > threshold else "white",
            )
    axis.set_title(f"{score_name}: every image against every caption (larger = more similar)")
    figure.tight_layout()
    _save(figure, path)


def draw_training_curves(path: str, history: list) -> None:
    """Token loss and accuracy per epoch: the last training batch's and, when measured, validation's."""
    plt = _pyplot()
    steps = [h["step"] for h in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(steps, [h[f"train_{metric}"] for h in history], marker="o", label="train (last batch)")
        if all(f"val_{metric}" in h for h in history):
            axis.plot(steps, [h[f"val_{metric}"] for h in history], marker="o", label="validation")
        axis.set_xlabel("step")
        axis.set_title(f"token {metric}")
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, path)


def draw_cross_attention(path: str, image_bytes: bytes, text: str, tokens, log_probs, attention: np.ndarray) -> None:
    """ "Show, attend and tell": for each predicted token of `text` (its words, then [end]), the image with the
    decoder's cross-attention over the grid laid on it, one row per decoder block. `attention` is [blocks,
    tokens, cells] for a square grid; `log_probs` are the tokens' log-probabilities given the image."""
    plt = _pyplot()
    with Image.open(io.BytesIO(image_bytes)) as image:
        pixels = np.asarray(image.convert("RGB"))
    blocks, num_tokens, cells = attention.shape
    side = int(round(cells**0.5))
    figure, axes = plt.subplots(
        blocks,
        num_tokens + 1,
        figsize=(1.9 * (num_tokens + 1), 2.1 * blocks + 0.6),
        squeeze=False,
        layout="constrained",
    )  # room for the title, as above
    extent = (0, pixels.shape[1], pixels.shape[0], 0)  # the grid stretched over the whole picture
    for block in range(blocks):
        axes[block, 0].imshow(pixels)
        axes[block, 0].set_title("image" if block == 0 else "", fontsize=9)
        axes[block, 0].set_ylabel(f"block {block + 1}", fontsize=9)
        for k in range(num_tokens):
            axis = axes[block, k + 1]
            weights = attention[block, k].reshape(side, side)
            axis.imshow(pixels, extent=extent)
            axis.imshow(
                weights, cmap="magma", alpha=0.6, extent=extent, interpolation="bilinear", vmin=0, vmax=weights.max()
            )
            if block == 0:
                axis.set_title(f"{tokens[k]}\n{log_probs[k]:.2f}", fontsize=9)
        for axis in axes[block]:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(
        f'where the model looks for each word of "{textwrap.shorten(text, 70, placeholder="…")}" '
        "(brighter = more attention; under each word its log-probability)",
        fontsize=10,
    )
    _save(figure, path)
