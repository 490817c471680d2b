"""llmcourse: the helper package of the course "How a large language model works".

One module per chapter, readable top to bottom:

* :mod:`llmcourse.data`    -- the course data sets, found offline or downloaded and checked (Ch. 0)
* :mod:`llmcourse.plots`   -- the course figure style and plotting helpers (all chapters)
* :mod:`llmcourse.checks`  -- self-checks used by the exercise notebooks (all exercises)
* :mod:`llmcourse.grade`   -- the autograder behind ``llmcourse grade`` (all exercises)
* :mod:`llmcourse.pixels`  -- the 3x3 pixel-display network, with hand-written backprop (Ch. 1)
* :mod:`llmcourse.ngram`   -- n-gram language models: counting, smoothing, sampling (Ch. 2)
* :mod:`llmcourse.bpe`     -- byte-pair encoding, fast and tiktoken-exact (Ch. 3)

Importing the package is cheap: submodules (and PyTorch) load only when used.
"""

__version__ = "0.1.0"

#: Where the course lives; the first cell of every notebook installs the package from here.
REPOSITORY_URL = "https://github.com/llmcourse/llmcourse"
