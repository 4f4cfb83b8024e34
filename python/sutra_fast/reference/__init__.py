"""Pure-Python twins of every compiled kernel.

They are slow on purpose: plain Python loops over Python floats, written to be
read and checked, not to be fast. Tests compare the compiled kernels against
them; benchmarks race against them.
"""
from sutra_fast.reference.kernels import cls_pool, l2_normalize, matryoshka, max_pool, mean_pool
from sutra_fast.reference.wordpiece import WordPieceTokenizer

__all__ = ["mean_pool", "cls_pool", "max_pool", "l2_normalize", "matryoshka", "WordPieceTokenizer"]
