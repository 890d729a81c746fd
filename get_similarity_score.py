"""`python get_similarity_score.py ...` is the installed `captioning-score ...`: see captioning/commands/score.py."""

from captioning.commands.score import run

if __name__ == "__main__":
    run()
