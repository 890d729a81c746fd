"""How training runs on the hardware at hand: the distribution strategy and who writes what across workers,
reduced precision, progress output, and TensorFlow's start-up noise."""
