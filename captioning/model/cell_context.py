"""The cell context: per grid cell, how much of its kind the whole image holds (what lets the decoder count).

Each cell asks every cell, itself included, how like it they are (sigmoid(q.k + bias), per head) and sums their
values by that weight. Softmax attention averages, so two stars and three stars read the same; a sum grows with
the number of matching cells, and a small MLP turns that amount into features. The result travels beside each
cell's content as a channel of its own (encoder.ImageEncoder), so the content the decoder matches words against
stays the cell's own, and binding (which colour goes with which shape) is not blurred by the other cells.
"""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="captioning")
class CellContext(layers.Layer):
    """content [B, cells, embed_dim] -> [B, cells, embed_dim]: what the image holds of each cell's kind."""

    def __init__(self, embed_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.key_dim = max(1, embed_dim // num_heads)  # as keras.layers.MultiHeadAttention is given it
        width = num_heads * self.key_dim
        self.query = layers.Dense(width, name="query")
        self.key = layers.Dense(width, name="key")
        self.value = layers.Dense(width, name="value")
        self.expand = layers.Dense(2 * embed_dim, activation="gelu", name="expand")
        self.contract = layers.Dense(embed_dim, name="contract")

    def build(self, content_shape):
        # Starts each pair's weight near 0.12, so the sums over 64 cells start small and grow as matches sharpen.
        self.bias = self.add_weight(
            shape=(self.num_heads, 1, 1), name="bias", initializer=keras.initializers.Constant(-2.0)
        )
        for dense in (self.query, self.key, self.value):
            dense.build((None, None, self.embed_dim))
        self.expand.build((None, None, self.num_heads * self.key_dim))
        self.contract.build((None, None, 2 * self.embed_dim))

    def _split_heads(self, x):
        x = keras.ops.reshape(x, (keras.ops.shape(x)[0], -1, self.num_heads, self.key_dim))
        return keras.ops.transpose(x, (0, 2, 1, 3))

    def call(self, content):
        query, key, value = (self._split_heads(dense(content)) for dense in (self.query, self.key, self.value))
        logits = keras.ops.matmul(query, keras.ops.transpose(key, (0, 1, 3, 2))) / self.key_dim**0.5
        weights = keras.ops.sigmoid(logits + keras.ops.cast(self.bias, logits.dtype))
        summed = keras.ops.transpose(keras.ops.matmul(weights, value), (0, 2, 1, 3))
        summed = keras.ops.reshape(summed, (keras.ops.shape(content)[0], -1, self.num_heads * self.key_dim))
        return self.contract(self.expand(summed))

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads}
