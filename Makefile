# The two set-up commands of the README, and the helpers they share.
#   make run    install into .venv and start the page + API on the bundled model at http://127.0.0.1:8080
#   make test   install the test dependencies and run the whole suite (what .ci/run calls)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_ARCHIVE := ../shared/data/aclImdb_v1.tar.gz
# The shared copy of the dataset when it is there, else the official download.
SOURCE ?= $(if $(wildcard $(SHARED_ARCHIVE)),$(SHARED_ARCHIVE),https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz)

.PHONY: run serve data sentences test lint format bench-preprocess bench-accuracy bench-serve bench-serve-avx2 bench-hostile bench-short bench-distributed bundled-model image image-cuda clean

# The visitor's whole path on http://127.0.0.1:8080: the page at /, POST /predict through the Lambda relay
# to `serve` with the bundled model (local_test/run_stack.sh; Ctrl+C stops it all).
run: $(VENV)/.installed
	local_test/run_stack.sh --port $${PORT:-8080}

# Only the model server (SageMaker's /ping and /invocations) on http://127.0.0.1:8080.
serve: $(VENV)/.installed
	USE_BUNDLED_MODEL=1 SENTIMENT_BIND_HOST=127.0.0.1 SAGEMAKER_BIND_TO_PORT=$${PORT:-8080} $(BIN)/serve

# The training channels in data/channels (about 5 s once the archive is cached); `SENTENCES=build/sentences`
# adds the teacher's soft-labelled sentences as the sentences channel.
data: $(VENV)/.installed
	$(BIN)/python deploy/prepare_data.py --source $(SOURCE) $(if $(SENTENCES),--sentences $(SENTENCES))

# The offline teacher and the sentences it labels, in build/ (about 17 minutes on 2 cores; teacher/README.md).
sentences: data $(VENV)/.teacher-installed
	$(BIN)/python -m teacher.finetune --train data/channels/train --output build/teacher
	$(BIN)/python -m teacher.label --unlabeled data/channels/unlabeled --teacher build/teacher --output build/sentences

test: $(VENV)/.test-installed lint
	$(BIN)/pytest

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.test-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-preprocess: $(VENV)/.installed
	$(BIN)/python benchmarks/preprocess.py --source $(SOURCE)

# About 30 minutes on 2 cores: four models trained and tested on the full data.
bench-accuracy: data
	$(BIN)/python benchmarks/accuracy.py

# Hostile and careless clients (about 5 min, one core): limits, memory, slow clients; needs nginx for its main rows.
bench-hostile: $(VENV)/.installed
	$(BIN)/python benchmarks/hostile.py

# One rank x 2 cores vs two ranks x 1 core (about 10 min, reduced configuration), communication, projection to N hosts.
bench-distributed: data
	$(BIN)/python benchmarks/distributed.py

# Short reviews like those typed into the page (about 1 min): `MODELS="--model DIR ..."` compares others;
# `TEACHER=build/teacher` adds the teacher and its labels (make sentences first; about 1 min more).
bench-short: data $(if $(TEACHER),$(VENV)/.teacher-installed)
	$(BIN)/python benchmarks/short_reviews.py $(MODELS) $(if $(TEACHER),--teacher $(TEACHER))

# Serving speed over HTTP with wrk (about 3 min; apt-get install wrk).
bench-serve: data
	$(BIN)/python benchmarks/serve.py

# The same on a CPU with only AVX2 (float32), as oneDNN and ATen imitate it: benchmarks/results/serve-avx2.json.
bench-serve-avx2: data
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python benchmarks/serve.py --results serve-avx2

# The CPU image, offline (about 2 min the first time, 1 s when up to date); docker/README.md.
image:
	docker/build_image.sh --cpu

# The CUDA image for SageMaker GPU training (needs network access for its base image and wheels).
image-cuda:
	docker/build_image.sh

# Retrain the bundled default model (about 19 minutes): `train` on the channels and the teacher's sentences
# (`make sentences` first), then float16. Four epochs: with the sentences each takes twice as long, and
# validation chose the fourth. The soft scores' logits doubled: fewer uncertain short texts (README, "Short reviews").
bundled-model: $(VENV)/.installed
	test -f build/sentences/sentences.jsonl || { echo "no build/sentences: run make sentences first" >&2; exit 1; }
	$(MAKE) data SENTENCES=build/sentences
	$(BIN)/sentiment-bundle --channels data/channels --output container/sentiment/bundled_model --epochs 4 --sentence_sharpness 2

$(VENV)/.installed: container/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed: make PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e container
	touch $@

$(VENV)/.teacher-installed: $(VENV)/.installed teacher/requirements.txt
	$(BIN)/pip install --quiet -r teacher/requirements.txt
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed tests/requirements.txt teacher/requirements.txt
	$(BIN)/pip install --quiet -r tests/requirements.txt
	touch $@

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .hypothesis
