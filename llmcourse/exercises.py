"""Where the exercises live and how learner versions are made: :mod:`llmcourse.grading.notebooks`.

Kept so that ``from llmcourse.exercises import ...`` goes on working.
"""

from llmcourse.grading.notebooks import *  # noqa: F401,F403
from llmcourse.grading.notebooks import __all__  # noqa: F401
