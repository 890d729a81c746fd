"""Training under a tf.distribute strategy, with resumable checkpoints, validation and TensorBoard logs."""

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from captioning.data import scene_counts
from captioning.data.inputs import distributed_training_data, evaluation_data
from captioning.data.text import Tokenizer, Vocabulary
from captioning.data.tfrecords import ShardedRecords
from captioning.model.captioner import Captioner
from captioning.model.config import ModelConfig
from captioning.training import counting, distribute, precision
from captioning.training.config import TrainingConfig
from captioning.training.progress import Progress
from captioning.util import atomic
from captioning.util.errors import InvalidInput
from captioning.util.memory import keep_freed_memory


def masked_loss_and_accuracy(logits, batch):
    """Summed token cross-entropy and correct-token count over real (unmasked) targets."""
    losses = keras.losses.sparse_categorical_crossentropy(batch["target_ids"], logits, from_logits=True)
    correct = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32) == batch["target_ids"], tf.float32)
    return tf.reduce_sum(losses * batch["mask"]), tf.reduce_sum(correct * batch["mask"])


def gather_replicas(x):
    """Every replica's `x` [b, ...] stacked in replica order, [replicas * b, ...], from inside a replica; gradients
    flow back to the replica that made each row. Built on all_reduce: MultiWorkerMirroredStrategy's all_gather
    refuses tensors that carry no device, as those made inside Keras layers do."""
    context = tf.distribute.get_replica_context()
    slot = tf.one_hot(context.replica_id_in_sync_group, context.num_replicas_in_sync, dtype=x.dtype)
    placed = tf.reshape(slot, [-1] + [1] * len(x.shape)) * x[None]  # zeros but in this replica's slot
    return tf.reshape(context.all_reduce("sum", placed), tf.concat([[-1], tf.shape(x)[1:]], axis=0))


def contrastive_loss_sum(image_embeddings, text_embeddings, image_keys, logit_scale):
    """Symmetric InfoNCE, summed over this replica's pairs, against the negatives of the whole global batch.

    Every replica's embeddings are gathered (gradients flow back to the replica that made them), so the
    per-replica sums add up to one device's loss on the same global batch. Two captions of one image (equal
    `image_keys`) are not each other's negatives: they are left out of each other's softmax.
    """
    context = tf.distribute.get_replica_context()
    all_images, all_texts, all_keys = (gather_replicas(x) for x in (image_embeddings, text_embeddings, image_keys))
    local = tf.shape(image_embeddings)[0]
    own = tf.cast(context.replica_id_in_sync_group, tf.int32) * local + tf.range(local)  # each pair's column
    columns = tf.range(tf.shape(all_keys)[0])
    same_image_other_pair = (image_keys[:, None] == all_keys[None, :]) & (own[:, None] != columns[None, :])
    excluded = tf.where(same_image_other_pair, -1e9, 0.0)

    def cross_entropy(rows, candidates):
        logits = logit_scale * tf.matmul(rows, candidates, transpose_b=True) + excluded
        return tf.nn.sparse_softmax_cross_entropy_with_logits(own, logits)

    return tf.reduce_sum(cross_entropy(image_embeddings, all_texts) + cross_entropy(text_embeddings, all_images)) / 2


CLIPNORM = 1.0  # each variable's gradient norm is clipped to this (clipped_shares)


def build_optimizer(config: TrainingConfig, policy: str = "float32"):
    """AdamW with warm-up and cosine decay. It clips nothing itself: see clipped_shares."""
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        warmup_target=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=max(1, config.total_steps - config.warmup_steps),
        alpha=0.05,
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision.needs_loss_scaling(policy) else optimizer


def clipped_shares(gradients, loss_scale=1.0):
    """From inside a replica: the replicas' gradients summed, each clipped to norm CLIPNORM (of the unscaled
    gradient), and divided by the number of replicas, which is this replica's share of what apply_gradients sums.

    Keras' own `clipnorm` clips inside apply_gradients before it sums the replicas' gradients, so it clips each
    replica's part: two replicas' halves, each within the norm, add up to twice what one device would keep. Clipping
    the sum costs a second all-reduce of the gradients, and makes any number of replicas train as one device does.
    """
    context = tf.distribute.get_replica_context()
    summed = context.all_reduce("sum", [tf.convert_to_tensor(g) for g in gradients])  # dense: embeddings are sparse
    return [tf.clip_by_norm(g, CLIPNORM * loss_scale) / context.num_replicas_in_sync for g in summed]


class Trainer:
    """Owns the model, optimizer, checkpoints and the distributed train/eval steps of one run."""

    def __init__(
        self,
        model_config: ModelConfig,
        training_config: TrainingConfig,
        vocabulary: Vocabulary,
        output_dir: str,
        strategy: tf.distribute.Strategy = None,
        train_captions=(),
    ):
        self.model_config, self.config, self.vocabulary = model_config, training_config, vocabulary
        self.output_dir = output_dir
        self.strategy = strategy or distribute.make_strategy()
        self.policy = precision.mixed_policy() if training_config.mixed_precision else "float32"
        keras.utils.set_random_seed(training_config.seed)  # the same seed gives the same initial weights
        with self.strategy.scope():
            with precision.dtype_policy(self.policy):
                self.model = Captioner(model_config)
            if len(train_captions):  # start the output bias at log unigram frequencies: faster, stabler
                self.model.decoder.output_layer.bias.assign(vocabulary.unigram_log_probs(list(train_captions)))
            self.count_head = self._build_count_head()
            self.trained_variables = self.model.trainable_variables + (
                self.count_head.trainable_variables if self.count_head else []
            )
            self.optimizer = build_optimizer(training_config, self.policy)
            self.optimizer.build(self.trained_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model.variables_by_path(),
            optimizer=self.optimizer,
            step=self.step,
            **({"count_head": self.count_head} if self.count_head else {}),
        )
        self.checkpoints = distribute.Checkpoints(self.checkpoint, os.path.join(output_dir, "ckpt"), self.strategy)
        self.is_chief = distribute.is_chief(self.strategy)
        self.tokenizer = Tokenizer(vocabulary, model_config.max_length)

    def _build_count_head(self):
        """The counting loss's head (counting.py), or None when the run trains none."""
        if not self.config.count_loss_weight:
            return None
        if not self.model.encoder.context:
            raise InvalidInput(
                "the counting loss trains the cell context: give --context_heads or --count_loss_weight 0"
            )
        with precision.dtype_policy(self.policy):
            head = counting.count_head()
        head.build((None, None, self.model_config.embed_dim))
        return head

    def restore(self) -> int:
        latest = self.checkpoints.latest
        if (
            latest
            and self.count_head
            and not any(name.startswith("count_head/") for name, _ in tf.train.list_variables(latest))
        ):
            raise InvalidInput(
                f"{latest} was trained without the counting loss: resume it with --count_loss_weight 0, "
                "or give a new --output_dir"
            )
        self.checkpoints.restore_latest()
        return int(self.step.numpy())

    def saved_step(self) -> int:
        """The step of the newest checkpoint (0 without one), from its name (ckpt-<step>): nothing is restored."""
        latest = self.checkpoints.latest
        return int(latest.rsplit("-", 1)[1]) if latest else 0

    def _replica_sums(self, batch, training):
        """-> (summed token loss, correct tokens, summed contrastive loss, summed counting loss) of this replica; the
        last two are 0 without their heads and when not training (validation reports the caption loss)."""
        model = self.model
        features = model.encode_images(batch["images"], training=training)
        logits = model.decode(
            model.with_null_image(features, batch["use_null_image"]), batch["input_ids"], training=training
        )
        loss_sum, correct = masked_loss_and_accuracy(logits, batch)
        contrastive = count = tf.constant(0.0)
        if training and model.contrastive:
            contrastive = contrastive_loss_sum(
                model.embed_images(features),
                model.embed_texts(batch["target_ids"], training=training),
                batch["image_keys"],
                model.contrastive.logit_scale(),
            )
        if training and self.count_head:
            count = counting.count_loss_sum(
                self.count_head(model.encoder.context_of(features)), batch["object_counts"], model.encoder.grid_shape
            )
        return loss_sum, correct, contrastive, count

    def _replica_gradients(self, batch):
        """One replica's share of a training step: gradients and metric terms (loss, accuracy, contrastive and
        counting losses) that, summed over the replicas, equal one device's on the same global batch, whatever the
        number of replicas (each is divided by the whole global batch's token or pair count)."""
        context = tf.distribute.get_replica_context()
        global_tokens = context.all_reduce("sum", tf.reduce_sum(batch["mask"]))
        global_pairs = tf.cast(tf.shape(batch["mask"])[0] * context.num_replicas_in_sync, tf.float32)
        with tf.GradientTape() as tape:
            loss_sum, correct, contrastive_sum, count_sum = self._replica_sums(batch, training=True)
            loss = loss_sum / global_tokens
            contrastive, count = contrastive_sum / global_pairs, count_sum / global_pairs
            total = loss + self.config.contrastive_weight * contrastive + self.config.count_loss_weight * count
            scaled = self.optimizer.scale_loss(total) if precision.needs_loss_scaling(self.policy) else total
        metrics = {
            "loss": loss,
            "accuracy": correct / global_tokens,
            "contrastive_loss": contrastive,
            "count_loss": count,
        }
        return tape.gradient(scaled, self.trained_variables), metrics

    def _distributed_step(self, iterator):
        def step_fn(batch):
            gradients, metrics = self._replica_gradients(batch)
            loss_scale = self.optimizer.dynamic_scale if precision.needs_loss_scaling(self.policy) else 1.0
            shares = clipped_shares(gradients, loss_scale)
            self.optimizer.apply_gradients(zip(shares, self.trained_variables))  # sums the replicas' shares
            return metrics

        per_replica = self.strategy.run(step_fn, args=(next(iterator),))
        self.step.assign_add(1)
        return [self.strategy.reduce("sum", per_replica[name], axis=None) for name in self._metric_names()]

    @tf.function
    def _train_loop(self, iterator, steps):
        """`steps` optimizer steps in one call, with no host round trip between them (Keras' steps_per_execution);
        each step's metrics go to the default summary writer from inside the graph, so writing them never waits for
        the host. Returns the last step's metrics, as named by `_metric_names`."""
        metrics = [tf.constant(0.0)] * len(self._metric_names())
        for _ in tf.range(steps):
            metrics = self._distributed_step(iterator)
            with tf.name_scope("/"):  # the root scope: tags "loss", not "while/loss"
                for name, value in zip(self._metric_names(), metrics):
                    tf.summary.scalar(name, value, step=self.step)
        return metrics

    def _metric_names(self) -> list:
        """The training metrics `_train_loop` returns, in order (a head's loss only with its head)."""
        return (
            ["loss", "accuracy"]
            + ["contrastive_loss"] * bool(self.model.contrastive)
            + ["count_loss"] * bool(self.count_head)
        )

    def _train_step(self, iterator):
        return self._train_loop(iterator, tf.constant(1))

    @tf.function
    def _eval_step(self, batch):
        def step_fn(batch):
            loss_sum, correct, _, _ = self._replica_sums(batch, training=False)
            return loss_sum, correct, tf.reduce_sum(batch["mask"])

        sums = self.strategy.run(step_fn, args=(batch,))
        return [self.strategy.reduce("sum", s, axis=None) for s in sums]

    def evaluate(self, examples) -> dict:
        """Token-level loss and accuracy over `examples` (each example once; a list or a TFRecords split)."""
        dataset = evaluation_data(examples, self.tokenizer, self.model_config.image_size, self.config.global_batch_size)
        totals = np.zeros(3)
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            totals += [float(t) for t in self._eval_step(batch)]
        return {"loss": totals[0] / max(totals[2], 1), "accuracy": totals[1] / max(totals[2], 1)}

    def fit(self, train_examples, val_examples, max_steps: int = None, log=print, after_checkpoint=None) -> list:
        """Trains until the configured total steps (or `max_steps` more in this call); resumes from the newest
        checkpoint. The chief calls `after_checkpoint(model, vocabulary, step)` after each checkpoint (e.g.
        captioning.evaluate.curves). Returns the per-epoch history."""
        start = self.restore()
        if start:
            log(f"resumed from checkpoint at step {start}")
        config, history = self.config, self._load_history()
        stop = config.total_steps if max_steps is None else min(config.total_steps, start + max_steps)
        iterator = iter(self.training_data(train_examples, start))
        writers = self._summary_writers()
        step = start
        while step < stop:
            epoch = step // config.steps_per_epoch
            epoch_end = min((epoch + 1) * config.steps_per_epoch, stop)
            log(f"epoch {epoch + 1}/{config.epochs}")
            keep_freed_memory()  # after the datasets are built, which lower glibc's trim threshold
            progress = Progress(config.steps_per_epoch, every=config.log_every_steps, log=log)
            progress.update(step - epoch * config.steps_per_epoch)
            started = time.time()
            while step < epoch_end:
                # A call never runs past a checkpoint or the epoch's end; the metrics are read once per call.
                next_checkpoint = (step // config.checkpoint_every_steps + 1) * config.checkpoint_every_steps
                steps = min(config.steps_per_loop, epoch_end - step, next_checkpoint - step)
                with writers["train"].as_default():
                    values = self._train_loop(iterator, tf.constant(steps))
                metrics = dict(zip(self._metric_names(), (float(v) for v in values)))
                loss, accuracy = metrics["loss"], metrics["accuracy"]
                step += steps
                progress.update(step - epoch * config.steps_per_epoch, metrics)
                if step % config.checkpoint_every_steps == 0:
                    self._checkpoint_at(step, after_checkpoint)
            self._checkpoint_at(step, after_checkpoint)
            writers["train"].flush()  # the summaries so far reach disk with the checkpoint
            if step == (epoch + 1) * config.steps_per_epoch:  # a full epoch: validate and record it
                validation = self.evaluate(val_examples) if val_examples else {}
                with writers["validation"].as_default(step=step):
                    for name, value in validation.items():
                        tf.summary.scalar(name, value)
                history.append(
                    {
                        "epoch": epoch + 1,
                        "step": step,
                        "train_loss": loss,
                        "train_accuracy": accuracy,
                        "seconds": round(time.time() - started, 1),
                        **{f"val_{k}": v for k, v in validation.items()},
                    }
                )
                self._save_history(history)
                log("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in validation.items()))
        return history

    def _checkpoint_at(self, step: int, after_checkpoint=None) -> None:
        self.checkpoints.save(step)
        if after_checkpoint and self.is_chief:
            after_checkpoint(self.model, self.vocabulary, step)

    def training_data(self, train_examples, start_step: int = 0):
        """The distributed stream of training batches from `start_step` on, with what the counting loss reads."""
        extras = {}
        if self.count_head:
            reason = counting.off_reason(self.model_config.context_heads, train_examples)
            if reason:
                raise InvalidInput(f"no counting loss: {reason}")
            if not isinstance(train_examples, ShardedRecords):  # TFRecords carry them in each image's record
                extras = {"object_counts": scene_counts.counts_array(train_examples)}
        return distributed_training_data(
            self.strategy,
            train_examples,
            self.tokenizer,
            self.model_config.image_size,
            self.config.global_batch_size,
            self.config.seed,
            self.model_config.image_dropout,
            start_step,
            extras,
        )

    def _summary_writers(self) -> dict:
        """TensorBoard writers of the chief; other workers write nothing (TF's convention)."""
        if not self.is_chief:
            return {name: tf.summary.create_noop_writer() for name in ("train", "validation")}
        return {
            name: tf.summary.create_file_writer(os.path.join(self.output_dir, "logs", name))
            for name in ("train", "validation")
        }

    def _history_path(self):
        return os.path.join(self.output_dir, "ckpt", "history.json")

    def _load_history(self):
        if not os.path.exists(self._history_path()):
            return []
        with open(self._history_path(), encoding="utf-8") as f:
            return [h for h in json.load(f) if h["step"] <= int(self.step.numpy())]

    def _save_history(self, history):
        if self.is_chief:
            atomic.write_text(self._history_path(), json.dumps(history, indent=1))

    def metadata(self) -> dict:
        return {
            "model_config": dataclasses.asdict(self.model_config),
            "training_config": dataclasses.asdict(self.config),
            "steps": int(self.step.numpy()),
            "dtype_policy": self.policy,
            "replicas": self.strategy.num_replicas_in_sync,
            "history": self._load_history(),
        }
