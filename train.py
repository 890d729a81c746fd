"""`python train.py ...` is the installed `captioning-train ...`: see captioning/commands/train.py."""

from captioning.commands.train import run

if __name__ == "__main__":
    run()
