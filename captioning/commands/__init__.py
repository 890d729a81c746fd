"""The command-line programs: each module is one command (its `main`), run by `run()`."""
