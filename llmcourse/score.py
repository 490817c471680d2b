"""The score cell of every exercise; it lives in :mod:`llmcourse.grading.score`.

Published notebooks end with ``from llmcourse.score import score_this_notebook``; this module
keeps that path.
"""

from llmcourse.grading.score import *  # noqa: F401,F403
from llmcourse.grading.score import __all__  # noqa: F401
