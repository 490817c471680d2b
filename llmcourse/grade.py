"""The autograder (``llmcourse grade NOTEBOOK``, ``python -m llmcourse.grade NOTEBOOK``).

It lives in :mod:`llmcourse.grading.grade`; this module keeps the command and the import path.
"""

import sys

from llmcourse.grading.grade import *  # noqa: F401,F403
from llmcourse.grading.grade import __all__, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
