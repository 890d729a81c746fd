"""Image encoders: a pixel batch -> a grid of image features [B, grid_cells, feature_dim]: per cell, what is
there (content), how much of its kind the image holds (context, when the model has one) and where it is
(position)."""

import keras
from keras import layers

from captioning.model.cell_context import CellContext
from captioning.model.grid_positions import grid_positions
from captioning.util.errors import InvalidInput

# keras.applications backbones: constructor and the matching input preprocessing.
BACKBONES = {
    "MobileNetV2": (keras.applications.MobileNetV2, keras.applications.mobilenet_v2.preprocess_input),
    "MobileNetV3Small": (keras.applications.MobileNetV3Small, keras.applications.mobilenet_v3.preprocess_input),
    "EfficientNetB0": (keras.applications.EfficientNetB0, keras.applications.efficientnet.preprocess_input),
    "EfficientNetV2B0": (keras.applications.EfficientNetV2B0, keras.applications.efficientnet_v2.preprocess_input),
    "ResNet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    "ResNet50V2": (keras.applications.ResNet50V2, keras.applications.resnet_v2.preprocess_input),
    "DenseNet121": (keras.applications.DenseNet121, keras.applications.densenet.preprocess_input),
    "ConvNeXtTiny": (keras.applications.ConvNeXtTiny, keras.applications.convnext.preprocess_input),
}
SMALL_CNN = "small_cnn"


class BackboneWeightsError(InvalidInput):
    """Pretrained weights could not be loaded (offline, or a bad path)."""


def build_backbone(name: str, weights: str, image_size: int) -> keras.Model:
    """A keras.applications backbone without its classifier head; `weights` is imagenet, none or a path."""
    if name not in BACKBONES:
        raise InvalidInput(f"unknown backbone {name!r}; choose {SMALL_CNN} or one of: {', '.join(BACKBONES)}")
    constructor, _ = BACKBONES[name]
    keras_weights = None if weights in ("none", "", None) else weights
    try:
        return constructor(include_top=False, weights=keras_weights, input_shape=(image_size, image_size, 3))
    except Exception as error:  # Keras raises a plain Exception for failed downloads
        if keras_weights == "imagenet":
            raise BackboneWeightsError(
                f"could not download ImageNet weights for {name} ({error}); this machine may be offline: "
                "use --backbone_weights none, or a local .weights.h5 path"
            ) from error
        raise BackboneWeightsError(f"could not load weights {weights!r} for {name}: {error}") from error


@keras.saving.register_keras_serializable(package="captioning")
class SmallConvNet(layers.Layer):
    """A small CNN for small synthetic images: a stride-2 stem, then stages that halve the resolution and refine
    it. No batch statistics, so one replica and several give the same result."""

    def __init__(self, widths=(32, 64, 128), **kwargs):
        super().__init__(**kwargs)
        self.widths = tuple(widths)
        self.stages = [layers.Conv2D(self.widths[0], 3, strides=2, padding="same", activation="gelu", name="stem")]
        for i, width in enumerate(self.widths[1:], start=1):
            self.stages += [
                layers.Conv2D(width, 3, strides=2, padding="same", activation="gelu", name=f"down{i}"),
                layers.Conv2D(width, 3, padding="same", activation="gelu", name=f"conv{i}"),
            ]

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        for _ in self.widths:  # each stride-2 "same" convolution rounds up
            height, width = -(-height // 2), -(-width // 2)
        return (input_shape[0], height, width, self.widths[-1])

    def call(self, images):
        x = images / 127.5 - 1.0
        for layer in self.stages:
            x = layer(x)
        return x

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths)}


@keras.saving.register_keras_serializable(package="captioning")
class ImageEncoder(layers.Layer):
    """Backbone feature map -> a grid of cells, each [content, position] (`feature_dim` = 2 * embed_dim), or
    [content, context, position] (3 * embed_dim) with `context_heads` > 0.

    Content (projection, then LayerNorm) says what a cell shows; a learned position per cell, kept apart and at
    unit scale, says where it is. Added together before the norm, the position was washed out by the content
    (norm ~0.4 against 10-20 on objects) and spoiled the content match; kept apart, the decoder finds a named
    object by its content alone and then reads its position off (see decoder.DecoderBlock). This is what lets
    the model tell "a red star left of a blue cross" from its converse. The positions start as the grid's
    columns and rows in sines and cosines (grid_positions), so "left of" is one direction from the first step.
    The context (cell_context.CellContext) is kept apart for the same reason as the position: it is read, never
    matched, so it lets the decoder count without blurring which colour belongs to which shape.
    """

    def __init__(
        self,
        backbone="small_cnn",
        backbone_weights="none",
        train_backbone=False,
        image_size=64,
        embed_dim=128,
        context_heads=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.context_heads = context_heads
        self.backbone_name, self.backbone_weights = backbone, backbone_weights
        self.train_backbone, self.image_size, self.embed_dim = train_backbone, image_size, embed_dim
        if backbone == SMALL_CNN:
            self.backbone, self.preprocess = SmallConvNet(name="small_cnn"), None
        else:
            self.backbone = build_backbone(backbone, backbone_weights, image_size)
            self.backbone.trainable = train_backbone
            self.preprocess = BACKBONES[backbone][1]
        self.projection = layers.Dense(embed_dim, name="projection")
        self.norm = layers.LayerNormalization(epsilon=1e-5, name="norm")
        self.context = CellContext(embed_dim, context_heads, name="context") if context_heads else None

    def build(self, input_shape):
        grid = self.backbone.compute_output_shape(tuple(input_shape))
        self.grid_shape = (grid[1], grid[2])
        self.position = self.add_weight(
            shape=(grid[1] * grid[2], self.embed_dim),
            name="position",
            initializer=lambda shape, dtype=None: keras.ops.cast(grid_positions(grid[1], grid[2], shape[1]), dtype),
        )
        self.projection.build((None, grid[3]))
        self.norm.build((None, None, self.embed_dim))
        if self.context:
            self.context.build((None, None, self.embed_dim))

    @property
    def num_cells(self) -> int:
        return self.grid_shape[0] * self.grid_shape[1]

    @property
    def feature_dim(self) -> int:
        return (3 if self.context else 2) * self.embed_dim

    def context_of(self, features):
        """The context part [B, cells, embed_dim] of features this encoder made (a model with a context)."""
        return features[..., self.embed_dim : 2 * self.embed_dim]

    def call(self, images, training=False):
        x = self.preprocess(images) if self.preprocess else images
        x = self.backbone(x, training=training and self.train_backbone)
        x = keras.ops.reshape(x, (-1, self.num_cells, x.shape[-1]))
        content = self.norm(self.projection(x))
        position = keras.ops.cast(self.position, content.dtype)
        position = keras.ops.broadcast_to(position[None], keras.ops.shape(content))
        parts = [content, self.context(content)] if self.context else [content]
        return keras.ops.concatenate(parts + [position], axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": self.backbone_name,
            "backbone_weights": self.backbone_weights,
            "train_backbone": self.train_backbone,
            "image_size": self.image_size,
            "embed_dim": self.embed_dim,
            "context_heads": self.context_heads,
        }
