"""Small utilities every layer may use; they import nothing else of the project: files written whole or not at
all, the process's memory behaviour, TensorFlow's start-up noise, and pictures drawn with matplotlib."""
