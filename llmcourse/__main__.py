"""The ``llmcourse`` command.

    llmcourse grade NOTEBOOK [--json] [--timeout S]   grade an exercise notebook
    llmcourse exercises generate                      regenerate learner versions (maintainers)
    llmcourse exercises check                         fail if a learner version is stale
"""

from __future__ import annotations

import sys

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "grade":
        from .grading.grade import main as grade_main

        return grade_main(rest)
    if command == "exercises" and rest in (["generate"], ["check"]):
        from .grading.notebooks import generate, stale

        if rest == ["generate"]:
            for path in generate():
                print(f"generated {path}")
            return 0
        problems = stale()
        print("\n".join(problems) if problems else "every learner version is up to date")
        return 1 if problems else 0
    print(f"llmcourse: unknown command {' '.join(argv)!r}\n\n{USAGE.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
