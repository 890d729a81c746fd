"""What one request may cost: a Predict call (gRPC and REST alike, checked before the model runs) and a call of
the search API. Each limit has a flag of serving.server of the same name.

Past a limit the request gets INVALID_ARGUMENT (HTTP 400) naming the limit and its flag, before anything is
allocated for it: TensorFlow's allocator keeps memory it once took, so a check after the fact would be too late.
"""

from dataclasses import dataclass

from captioning.inference.tensors import TensorSize
from captioning.search.images import ImageError, ImageLimits, decoding_cost
from serving.status import invalid_argument

IMAGE_INPUT = "image_bytes"  # the encoded-image input of every signature that takes images
# The most the project's own clients send in one call (captioning.inference.batch.score_matrix: 8 images x 256
# texts), so the limits may not go below these.
CLIENT_ROWS, CLIENT_PAIRS = 256, 8 * 256


@dataclass(frozen=True)
class RequestLimits:
    max_rows_per_call: int = CLIENT_ROWS  # rows of any input of any signature
    max_matrix_pairs: int = 2 * CLIENT_PAIRS  # images x texts of one score_matrix call
    max_beam_size: int = 16  # generate_caption
    max_caption_length: int = 64  # generate_caption's max_length, in words
    image: ImageLimits = ImageLimits()
    # Images x beam_size of one generate_caption call: each hypothesis re-decodes its whole prefix at every step,
    # so its memory grows with both. The default lets the project's clients send 64 images at the largest beam.
    max_caption_hypotheses: int = 64 * 16
    # All inputs of one call together, from the declared shapes and the payloads' lengths, before any array is
    # built: 256 rows of score_features' largest features (8x8 cells x 512 floats) fit 2**24 elements.
    max_input_elements: int = 2**24
    max_input_bytes: int = 256 * 2**20
    # All images of one call together, as decoding them would cost (a GIF of 40 megapixels took 4.1 s on 2 busy
    # cores; JPEG and PNG decode faster): one image at the per-image limit fits, and a call stays within about 5 s
    # however its images are split.
    max_request_pixels: int = 48_000_000
    max_request_frames: int = 512

    def check_sizes(self, sizes: dict) -> None:
        """INVALID_ARGUMENT when inputs of these sizes ({alias: tensors.TensorSize}) are over a limit."""
        for alias, size in sizes.items():
            if size.rows > self.max_rows_per_call:
                raise invalid_argument(
                    f"{alias} has {size.rows} rows; this server takes at most "
                    f"{self.max_rows_per_call} per call (--max_rows_per_call)"
                )
        elements = sum(size.elements for size in sizes.values())
        if elements > self.max_input_elements:
            raise invalid_argument(
                f"the inputs hold {elements} values; this server takes at most "
                f"{self.max_input_elements} per call (--max_input_elements)"
            )
        nbytes = sum(size.bytes for size in sizes.values())
        if nbytes > self.max_input_bytes:
            raise invalid_argument(
                f"the inputs hold {nbytes} bytes; this server takes at most "
                f"{self.max_input_bytes} per call (--max_input_bytes)"
            )

    def check(self, signature_name: str, arrays: dict) -> None:
        """INVALID_ARGUMENT when a request to `signature_name` with these inputs ({alias: numpy}) is over a limit."""
        self.check_sizes({alias: TensorSize.of_array(array) for alias, array in arrays.items()})
        if signature_name == "score_matrix":
            pairs = arrays[IMAGE_INPUT].shape[0] * arrays["text"].shape[0]
            if pairs > self.max_matrix_pairs:
                raise invalid_argument(
                    f"score_matrix of {pairs} image-text pairs; this server takes at most "
                    f"{self.max_matrix_pairs} per call (--max_matrix_pairs)"
                )
        if signature_name == "generate_caption":
            self._check_scalar(arrays, "beam_size", self.max_beam_size, "--max_beam_size")
            self._check_scalar(arrays, "max_length", self.max_caption_length, "--max_caption_length")
            beams = arrays.get("beam_size")
            if IMAGE_INPUT in arrays and beams is not None and beams.size == 1:
                hypotheses = arrays[IMAGE_INPUT].shape[0] * int(beams)
                if hypotheses > self.max_caption_hypotheses:
                    raise invalid_argument(
                        f"generate_caption of {hypotheses} hypotheses (images x beam_size); this "
                        f"server takes at most {self.max_caption_hypotheses} per call "
                        "(--max_caption_hypotheses)"
                    )
        images = arrays.get(IMAGE_INPUT)
        if images is not None and images.dtype == object:
            self._check_images(images.reshape(-1))

    def _check_images(self, images) -> None:
        pixels = frames = 0
        for image in images:
            try:
                cost = decoding_cost(image, self.image)
            except ImageError as error:
                raise invalid_argument(f"{IMAGE_INPUT}: {error}") from None
            if cost is not None:
                pixels, frames = pixels + cost.pixels, frames + cost.frames
        if pixels > self.max_request_pixels:
            raise invalid_argument(
                f"{IMAGE_INPUT}: the call's {len(images)} images decode to {pixels} pixels; this "
                f"server takes at most {self.max_request_pixels} per call (--max_request_pixels)"
            )
        if frames > self.max_request_frames:
            raise invalid_argument(
                f"{IMAGE_INPUT}: the call's {len(images)} images hold {frames} frames; this "
                f"server takes at most {self.max_request_frames} per call (--max_request_frames)"
            )

    @staticmethod
    def _check_scalar(arrays, alias, limit, flag):
        if alias in arrays and arrays[alias].size == 1 and int(arrays[alias]) > limit:
            raise invalid_argument(f"{alias} {int(arrays[alias])} is over this server's limit of {limit} ({flag})")


@dataclass(frozen=True)
class SearchLimits:
    max_results: int = 100  # k of /search
    max_candidates: int = 256  # K of /search: images reranked by the caption decoder
    max_labels: int = 100  # labels of one /api/describe
    max_texts: int = 256  # texts of one /api/score
    max_upload_bytes: int = 20 * 2**20  # an uploaded image (the same as a URL's)
    max_url_bytes: int = 20 * 2**20
    url_timeout_seconds: float = 10.0  # a whole URL fetch, from name look-up to last byte
    max_concurrent_fetches: int = 8  # URL fetches at once; more get 503
