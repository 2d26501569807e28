"""ZenML steps: thin adapters from pipeline artifacts to `recsys/`, one step per file, grouped by stage.

Import from the stage package (`from steps.training import train_ranker`): this package imports none of
them, so loading one stage does not pull in the others' dependencies. Artifact names live in `names`.
"""
