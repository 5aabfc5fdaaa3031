# nlm: set-up, demo, tests and benchmarks.  `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NLM := $(VENV)/bin/nlm
# The CPU build of torch goes in first, so that installing nlm (torch>=2.2,<3) pulls no CUDA build.
# Elsewhere, point pip at a CPU (or CUDA) wheel index with TORCH_PIP_ARGS="--index-url URL".
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
DEMO ?= runs/demo
DEMO_SECONDS ?= 90
CORPUS := corpora/english

.PHONY: all install demo test test-fast bench bench-train bench-startup bench-equal-time bench-score bench-score-generate bench-vision bench-memory bench-cells bench-quality bench-levels bench-adapt bench-char clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Build a vocabulary, train a small LSTM on the bundled corpus for 90 seconds (a budget: as many
# epochs as fit), then use it: perplexity, sentence scores from a pipe, generation, and BLEU/chrF.
demo: install
	$(NLM) vocab build $(CORPUS)/train.txt -o $(DEMO).model --level bpe --size 800 --check $(CORPUS)/valid.txt
	$(NLM) train --train $(CORPUS)/train.txt --valid $(CORPUS)/valid.txt --vocab $(DEMO).model -o $(DEMO) --force \
		--hidden 256 --dropout 0.3 --bptt 35 --batch-size 16 --max-time $(DEMO_SECONDS)
	$(NLM) perplexity -m $(DEMO) $(CORPUS)/valid.txt
	head -n 3 $(CORPUS)/valid.txt | $(NLM) score -m $(DEMO) --with-text
	$(NLM) generate -m $(DEMO) --prompts $(CORPUS)/prompts.txt | head -n 5
	$(NLM) evaluate -m $(DEMO) --prompts $(CORPUS)/prompts.txt --refs $(CORPUS)/refs.txt

# The linter and the formatter first (what CI runs too): a style fix is cheaper than a test run.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -q

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

bench: bench-train bench-startup bench-score-generate bench-vision

bench-train: install
	$(PY) bench/train_speed.py

bench-startup: install
	$(PY) bench/startup.py

# PTB at equal time against the PyTorch example itself: EXAMPLE=path/to/pytorch-examples/word_language_model
bench-equal-time: install
	test -n "$(EXAMPLE)" || { echo "make bench-equal-time EXAMPLE=path/to/examples/word_language_model" >&2; exit 2; }
	$(PY) bench/equal_time.py --example $(EXAMPLE)

# Plain, --cache, --dynamic-eval and both on a model's validation text (tuned on its first half, measured on the
# second): ADAPT_LM (default: the PTB model of `make bench-equal-time`), ADAPT_VALID, ADAPT_TRAIN, ADAPT_CACHE (window).
ADAPT_LM ?= runs/bench/equal-time/ptb-25min
ADAPT_VALID ?= ../shared/data/ptb/ptb.valid.txt
ADAPT_TRAIN ?= ../shared/data/ptb/ptb.train.txt
ADAPT_CACHE ?= 500
bench-adapt: install
	taskset -c 0 $(PY) bench/adaptation.py -m $(ADAPT_LM) --valid $(ADAPT_VALID) --train $(ADAPT_TRAIN) \
		--cache $(ADAPT_CACHE) --out runs/bench/adapt-$(notdir $(ADAPT_LM)).json

# Tiny Shakespeare at equal time, side by side (core 0 and core 1, one thread each): `nlm train --recipe
# shakespeare-char` against the bare PyTorch character model of bench/char_reference.py; then the table.
CHAR_MINUTES ?= 15
bench-char: install
	mkdir -p runs/bench
	taskset -c 0 $(NLM) --threads 1 train --recipe shakespeare-char --train ../shared/data/tinyshakespeare/train.txt \
		--valid ../shared/data/tinyshakespeare/valid.txt -o runs/bench/shakespeare-char --force \
		--max-time $$(( $(CHAR_MINUTES) * 60 )) -q & \
	taskset -c 1 $(PY) bench/char_reference.py --minutes $(CHAR_MINUTES) --out runs/bench/char-reference.json & \
	wait
	$(PY) bench/char_reference.py --compare runs/bench/shakespeare-char --reference runs/bench/char-reference.json

# The README's scoring figures used the PTB model of `make bench-equal-time` (runs/bench/equal-time/ptb-25min);
# without it, a PTB model is trained for 5 minutes first.
BENCH_LM ?= runs/bench/equal-time/ptb-25min
$(BENCH_LM)/best.pt:
	$(NLM) train --train ../shared/data/ptb/ptb.train.txt --valid ../shared/data/ptb/ptb.valid.txt -o $(BENCH_LM) \
		--max-time 300 -q

# Scoring at volume (bench/score_volume.py): a 20M-token text made from PTB (and gzipped), 1 and 2 threads and
# torchrun 2 x 1, fp32 and bf16, .gz against plain, peak RSS at 20M against 2M tokens; hours on 2 cores.
# SCORE_TOKENS=200K for a short run; KENLM_BIN=DIR KENLM_MODEL=FILE also times KenLM's query on the same text.
SCORE_TOKENS ?= 20M
SCORE_ROUNDS ?= 1
bench-score: install $(BENCH_LM)/best.pt
	$(PY) bench/score_volume.py -m $(BENCH_LM) --tokens $(SCORE_TOKENS) --rounds $(SCORE_ROUNDS) \
		--out runs/bench/score-volume.json $(if $(KENLM_BIN),--kenlm-bin $(KENLM_BIN) --kenlm-model $(KENLM_MODEL))

# Batched against one-at-a-time scoring, and generation speed, on PTB's validation text.
bench-score-generate: install $(BENCH_LM)/best.pt
	$(PY) bench/score_generate.py -m $(BENCH_LM)

bench-vision: install
	$(PY) bench/vision.py

# Long-range memory: LSTM, GRU and tanh RNN on copy and recall tasks (a few CPU minutes); redraws docs/memory-tasks.png.
bench-memory: install
	$(PY) bench/memory_tasks.py --plot docs/memory-tasks.png

# The README's LSTM / GRU / tanh RNN comparison, 40 s of training each (two torch threads); redraws docs/training-curves.png.
bench-cells: install
	$(PY) bench/cell_curves.py --plot docs/training-curves.png

bench-quality: install
	bash bench/ptb_quality.sh

# Word, BPE and char models of WikiText-2, LEVEL_MINUTES of training each (two at a time, one per core), by bits per byte.
LEVEL_MINUTES ?= 20
bench-levels: install
	mkdir -p runs/bench
	taskset -c 0 $(PY) bench/vocab_levels.py run --level word --minutes $(LEVEL_MINUTES) --out runs/bench/levels-word.json & \
	taskset -c 1 $(PY) bench/vocab_levels.py run --level bpe --minutes $(LEVEL_MINUTES) --out runs/bench/levels-bpe.json & \
	wait
	taskset -c 0 $(PY) bench/vocab_levels.py run --level char --minutes $(LEVEL_MINUTES) --out runs/bench/levels-char.json
	$(PY) bench/vocab_levels.py table runs/bench/levels-word.json runs/bench/levels-bpe.json runs/bench/levels-char.json

clean:
	rm -rf $(VENV) runs .pytest_cache
