"""run.py's helpers: what a run prints (output), how a failure reads (errors), where to look after (summary).

Front-end code only: it may import ZenML; the pipelines, steps and recsys/ never import it.
"""
