"""The exercises' rules (a part that asks you to write X must not call someone else's X).

They live in :mod:`llmcourse.grading.rules`; exercise notebooks import
``from llmcourse.rules import check_own_work``, which this module keeps working.
"""

from llmcourse.grading.rules import *  # noqa: F401,F403
from llmcourse.grading.rules import __all__  # noqa: F401
