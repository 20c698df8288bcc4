"""User tasks for the corpus's python-task files (imported from this folder)."""


def make_task(size=4):
    raise AssertionError("the corpus only calls it with arguments it does not take")


def make_broken(size=4):
    raise ValueError("boom in user task")
