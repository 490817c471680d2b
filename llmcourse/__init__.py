"""llmcourse: the helper package of the course "How a large language model works".

One module per chapter, readable top to bottom:

* :mod:`llmcourse.data`    -- the course data sets, found offline or downloaded and checked (Ch. 0)
* :mod:`llmcourse.plots`   -- the course figure style and plotting helpers (all chapters), with
  :mod:`llmcourse.style`, :mod:`llmcourse.alt_text` (figures described in words for the website)
  and :mod:`llmcourse.pixel_plots` (Chapter 1's figures)
* :mod:`llmcourse.checks`  -- self-checks used by the exercise notebooks (all exercises)
* :mod:`llmcourse.grade`   -- the autograder behind ``llmcourse grade`` (all exercises)
* :mod:`llmcourse.score`   -- the exercises' last cell: grades the open notebook (Colab, JupyterLab)
* :mod:`llmcourse.exercises` -- where exercises live; learner versions made with nbgrader
* :mod:`llmcourse.charcounts` -- next-character counts, the first language model (Ch. 0)
* :mod:`llmcourse.pixels`  -- the 3x3 pixel-display network, with hand-written backprop (Ch. 1)
* :mod:`llmcourse.widgets` -- the interactive widgets of the chapters (Ch. 1, 3, 5, 7)
* :mod:`llmcourse.vocab`   -- characters <-> ids: Chapter 2's vocabulary, Chapter 6's tokenizer
* :mod:`llmcourse.ngram`   -- n-gram language models: counting, smoothing, sampling (Ch. 2)
* :mod:`llmcourse.bpe`     -- byte-pair encoding, fast and tiktoken-exact (Ch. 3)
* :mod:`llmcourse.embeddings` -- word vectors: skip-gram with negative sampling, GloVe (Ch. 4)
* :mod:`llmcourse.word_vectors` -- a table of word vectors and its look-ups: cosine, analogies (Ch. 4)
* :mod:`llmcourse.attention` -- scaled dot-product and multi-head causal self-attention (Ch. 5)
* :mod:`llmcourse.copy_task` -- looking a letter up: attention against a plain network (Ch. 5)
* :mod:`llmcourse.gpt`     -- a small GPT, the model and only the model (Ch. 6)
* :mod:`llmcourse.train`   -- training it: batches, schedule, evaluation, checkpoints, DDP (Ch. 6)
* :mod:`llmcourse.metrics` -- the held-out loss in nats per character (Ch. 6)
* :mod:`llmcourse.checkpoint` -- saving and loading models: safetensors + JSON (Ch. 6)
* :mod:`llmcourse.ladder`  -- what each part of a block earns: the ablation ladder (Ch. 6)
* :mod:`llmcourse.sampling` -- greedy, temperature, top-k, top-p; generation with a KV cache (Ch. 7)
* :mod:`llmcourse.chat`    -- chat template, special tokens, the loss mask (Ch. 8)
* :mod:`llmcourse.assistant` -- the assistant answers and calls the calculator: the tool loop (Ch. 8)
* :mod:`llmcourse.sft`     -- supervised fine-tuning on conversations, new token rows (Ch. 8)
* :mod:`llmcourse.chat_data` -- the conversation data set made from Tiny Shakespeare (Ch. 8)
* :mod:`llmcourse.calculator` -- the safe calculator the assistant calls, parsed with ast (Ch. 8)
* :mod:`llmcourse.quant`   -- Q4_1 and Q8_0 quantisation: weights in 4 and 8 bits (Ch. 9)
* :mod:`llmcourse.gguf_file` -- reading a GGUF model file: metadata and tensor bytes (Ch. 9)
* :mod:`llmcourse.llama`   -- SmolLM2-135M, a real Llama-style LLM, run by the course's code (Ch. 9)
* :mod:`llmcourse.llama_tokenizer` -- its tokenizer as Chapter 3's BPE, and ChatML (Ch. 9)

Importing the package is cheap: submodules (and PyTorch) load only when used.
"""

__version__ = "0.1.0"

#: Where the course lives; the first cell of every notebook installs the package from here.
REPOSITORY_URL = "https://github.com/llmcourse/llmcourse"
