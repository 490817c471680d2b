"""Running the package's scripts from a terminal: a mistake prints one line, not a traceback.

``python -m llmcourse.train``, ``python -m llmcourse.ladder`` and ``python -m
llmcourse.export_onnx`` end through :func:`run`: when what they were given is wrong (a data set
that cannot be found, a bad setting, a missing file) they print the error's own message, which
says what was expected and what came, and exit with status 2, as ``argparse`` does for a bad
option. A bug in the code still shows its traceback.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

__all__ = ["run"]


def run(main: Callable[[Sequence[str] | None], Any], prog: str,
        argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)``; on a user's error print ``prog: error: message`` and return 2."""
    from llmcourse.data import DataError

    try:
        main(argv)
    except (DataError, FileNotFoundError, ValueError, TypeError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0
