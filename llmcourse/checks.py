"""The self-checks of the exercise notebooks; they live in :mod:`llmcourse.grading.checks`.

Published notebooks import ``from llmcourse.checks import ...``; this module keeps that path.
"""

from llmcourse.grading.checks import *  # noqa: F401,F403
from llmcourse.grading.checks import __all__  # noqa: F401
