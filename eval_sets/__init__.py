"""Evaluation sets by name: MATH-500, AIME 2024/2025, AMC 2023, GSM8K and a seeded arithmetic generator.

    from eval_sets import load
    problems = load("math500", levels=[4, 5], limit=50)   # data dir: --data-dir / TTSCALE_DATA_DIR, else hub

Add a set with `@register_dataset("name")` or an entry point in group "ttscale.datasets".
"""

from eval_sets.datadir import resolve_data_dir
from eval_sets.problem import Problem
from eval_sets.registry import dataset_checksum, list_datasets, load, register_dataset

from eval_sets import loaders as _loaders  # noqa: F401  (registers the built-in sets)

__all__ = ["Problem", "dataset_checksum", "list_datasets", "load", "register_dataset", "resolve_data_dir"]
