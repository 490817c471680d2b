"""Every example in the package's docstrings runs and prints what it says (``>>>`` lines)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import llmcourse

MODULES = sorted(m.name for m in pkgutil.iter_modules(llmcourse.__path__, "llmcourse.")
                 if m.name != "llmcourse.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ImportError as e:     # an optional extra that is not installed
        pytest.skip(f"{name} needs {e.name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_package_has_examples():
    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for n in ("llmcourse.vocab", "llmcourse.ngram",
                                             "llmcourse.bpe", "llmcourse.calculator")
                   for t in finder.find(importlib.import_module(n)))
    assert examples >= 10
