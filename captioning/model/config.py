"""The model's shape as a plain object: flags only override it, and it is saved as JSON beside every trained
model so the model can be rebuilt exactly. It checks itself when built, whether from flags, Python or a file."""

import dataclasses
import json

from captioning.util.config_fields import ConfigError, Rule, at_least, check_fields, setting, within

SMALL_CNN = "small_cnn"
_POSITIVE = at_least(1)


def default_image_size(backbone: str) -> int:
    """The input side a backbone gets when none is given: the small CNN's 64, keras.applications' 224."""
    return 64 if backbone == SMALL_CNN else 224


@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild a Captioner (the vocabulary itself is stored beside it)."""

    vocab_size: int = setting(
        0, None, Rule(lambda value: value >= 0, "must be 0 (filled in from the vocabulary) or more")
    )
    max_length: int = setting(
        20, "Decoder positions ([start] + words); longer texts truncate.", at_least(2, " ([start] and one word)")
    )
    image_size: int | None = setting(None, "Input image side (default: 64 for small_cnn, 224 otherwise).", _POSITIVE)
    backbone: str = setting(SMALL_CNN, "small_cnn or a keras.applications name (e.g. EfficientNetB0).")
    backbone_weights: str = setting("none", "imagenet (downloads), none, or a .weights.h5 path.")
    train_backbone: bool = setting(False, "Fine-tune a keras.applications backbone (the small CNN always trains).")
    embed_dim: int = setting(128, "Model width.", _POSITIVE)
    num_heads: int = setting(4, "Attention heads (they split embed_dim evenly).", _POSITIVE)
    num_layers: int = setting(2, "Decoder layers.", _POSITIVE)
    ff_dim: int = setting(256, "Decoder feed-forward width.", _POSITIVE)
    dropout: float = setting(0.1, "Decoder dropout.", within(0, 1, closed_high=False))
    image_dropout: float = setting(0.1, "Share of examples trained with the null image.", within(0, 1))
    context_heads: int = setting(
        4,
        "Heads of the encoder's cell context, which lets each cell read how much of its "
        "kind the image holds (what counting needs); 0: none.",
        Rule(lambda value: value >= 0, "must be 0 (no cell context) or more"),
    )
    contrastive_dim: int = setting(
        128,
        "Width of the contrastive head's image and text embeddings (CoCa-style); 0: no head.",
        Rule(lambda value: value >= 0, "must be 0 (no head) or more"),
    )

    def __post_init__(self):
        if self.image_size is None:
            self.image_size = default_image_size(self.backbone)
        check_fields(self)
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"ModelConfig.embed_dim = {self.embed_dim}: must be a multiple of num_heads "
                f"({self.num_heads}), which split it evenly"
            )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        # Saved before the contrastive head or the cell context existed: a model without them.
        values = {"contrastive_dim": 0, "context_heads": 0, **values}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str) -> "ModelConfig":
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
