"""A model trained for a minute or two on the simpler synthetic world (one and two objects) already prefers the true
caption over the same caption with one colour or shape word changed, or with the relation's two objects exchanged,
far more often than chance (0.5); and its contrastive head ranks an image's true caption above other scenes'
captions. (The crowded world of three and four objects needs the default budget: docs/quality.md.)"""

import numpy as np

from captioning.data import scene_captions, synthetic
from captioning.evaluate.evaluation import hard_negative_accuracy
from captioning.inference.local import SavedModelScorer
from captioning.model.config import ModelConfig
from captioning.training.config import TrainingConfig
from tests.helpers import train_model

# Small images (a 4 x 4 grid) and two decoder layers: the smallest recipe found that learns relations this fast.
QUICK_MODEL = ModelConfig(
    max_length=16,
    image_size=32,
    embed_dim=64,
    num_heads=2,
    num_layers=2,
    ff_dim=128,
    dropout=0.0,
    image_dropout=0.1,
    contrastive_dim=32,
)
# The counting loss at its default weight (1) held this recipe's relations at chance (0.59, in two runs; 0.97 without
# it, 0.95 at 0.3): on a 4 x 4 grid, at this learning rate and budget, it crowds out the captions.
# 2,500 steps, as the relation's jump comes late on some runs: log_likelihood relation on the unseen seed after 1,500
# steps was 0.94 with training seed 0 but 0.66, 0.47 and 0.60 with seeds 1, 2 and 3 (another machine's rounding
# could as well move the jump); after 2,500 steps it was 0.94-0.95 with seeds 0, 1, 2 and 3.
QUICK_TRAINING = TrainingConfig(
    global_batch_size=32,
    epochs=1,
    steps_per_epoch=2500,
    learning_rate=4e-3,
    warmup_steps=30,
    checkpoint_every_steps=2500,
    validation_steps=2,
    count_loss_weight=0.3,
)
UNSEEN_SEED = 4242  # training uses seed 0
SIMPLE_WORLD = 2  # objects per scene at most


def test_quick_model_reads_colour_shape_and_relations_and_its_contrastive_head_ranks_captions(tmp_path):
    scorer = SavedModelScorer(
        train_model(tmp_path, QUICK_MODEL, QUICK_TRAINING, num_images=2000, max_objects=SIMPLE_WORLD)
    )
    scenes = synthetic.generate_scenes(300, seed=UNSEEN_SEED, max_objects=SIMPLE_WORLD)
    accuracy = hard_negative_accuracy(scorer, scenes, QUICK_MODEL.image_size)
    color, shape = accuracy["color"]["log_likelihood"], accuracy["shape"]["log_likelihood"]
    relation = accuracy["relation"]["log_likelihood"]
    # 300 pairs of colour and shape, about 210 of relation: chance gives 0.5 +- 0.03 and 0.5 +- 0.04, so these
    # bounds are many standard deviations above it.
    assert color >= 0.85 and (color + shape) / 2 >= 0.72, accuracy
    assert relation >= 0.75, accuracy["relation"]

    scenes = synthetic.generate_scenes(60, seed=UNSEEN_SEED + 1, max_objects=SIMPLE_WORLD)
    images = [synthetic.render_scene_png(scene, QUICK_MODEL.image_size) for scene in scenes]
    matrix = scorer.score_matrix(images, [scene_captions.full_caption(scene) for scene in scenes])["contrastive"]
    beaten = (np.diag(matrix)[:, None] > matrix).sum(axis=1) / (len(scenes) - 1)  # per image: other captions below
    assert beaten.mean() >= 0.9, beaten
