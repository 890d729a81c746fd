"""Training a Captioner: the loop under a tf.distribute strategy (loop), one run from data to exported model
(run), the trained model's files (artifacts), and how a run uses the hardware (distribute, precision, progress)."""
