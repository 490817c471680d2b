"""Grading the exercises: one subpackage, read in this order.

* :mod:`llmcourse.grading.checks` -- the self-checks a test cell calls (``check_close`` ...): a
  failure says what was expected, what came, and a hint;
* :mod:`llmcourse.grading.notebooks` -- where the exercise sources live, the score cells every
  exercise ends with, and the learner versions nbgrader generates from the sources;
* :mod:`llmcourse.grading.grade` -- the autograder: nbgrader grades a copy of a notebook in a
  fresh kernel (hidden tests included) and reports points per part;
* :mod:`llmcourse.grading.score` -- the score cell: finds the open notebook (Colab, JupyterLab)
  and grades a copy of it with the same grader.

The paths that published notebooks use (``llmcourse.checks``, ``llmcourse.score``) and the
command ``python -m llmcourse.grade`` keep working: those modules re-export these.
"""
