"""Experiments: ``compare`` trains naive networks and their 1x1-reduced twins side by side.

>>> from onebyone.experiments import list_variants
>>> "nin_mlpconv" in list_variants()
True
"""

from onebyone.experiments.comparison import CompareReport, VariantResult, compare
from onebyone.experiments.variants import VARIANTS, Variant, build_variant, list_variants

__all__ = [
    "VARIANTS",
    "CompareReport",
    "Variant",
    "VariantResult",
    "build_variant",
    "compare",
    "list_variants",
]
