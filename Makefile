# Newswire task runner: these targets are exactly what CI and the README use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# e.g. BENCH_LATENCY_ARGS=--quick (60 articles per rate, 200 for throughput), or --json
BENCH_LATENCY_ARGS ?=
# e.g. BENCH_POLLER_SCALE_ARGS="--feeds 20000 --interval 300" (default: 200,000 feeds, 2 x 30 min)
BENCH_POLLER_SCALE_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-cluster test-integration eval bench lint format docs iptc-terms train-topics stack-up stack-down clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[nlp,dev]'
	@bash deploy/local/check-tools.sh
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Newswire with its NLP model and dev tools

run: $(STAMP) ## The main job: local stack, setup, worker, poller, seeds (Ctrl-C stops it)
	$(BIN)/newswire run

test: $(STAMP) ## All tests: unit, integration (real Kafka + search engine), e2e, quality gates
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## Unit tests only (no servers)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-cluster: $(STAMP) ## Fault tests on a local cluster (3 KRaft brokers, 3 Elasticsearch nodes); not in `make test`
	$(BIN)/python -m pytest --cluster tests/cluster $(PYTEST_ARGS)

eval: $(STAMP) ## Enrichment quality on ../shared/eval (entity F1, topic accuracy)
	$(BIN)/python -m workshop.evaluation

bench: $(STAMP) ## Benchmarks (ratios against baselines run in the same process; latency starts its own stack)
	$(BIN)/python bench/bench_enrich.py
	$(BIN)/python bench/bench_poller.py
	$(BIN)/python bench/bench_poller_scale.py $(BENCH_POLLER_SCALE_ARGS)
	$(BIN)/python bench/bench_topics.py
	$(BIN)/python bench/bench_latency.py $(BENCH_LATENCY_ARGS)
	$(BIN)/python bench/bench_soak.py
	$(BIN)/python bench/bench_corenlp_replicas.py
	$(BIN)/python bench/bench_reprocess.py
	$(BIN)/python bench/bench_alerts.py
	$(BIN)/python bench/bench_cluster.py

lint: $(STAMP) ## ruff (lint + format check), mypy, and the import contracts (layering, no cycles)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m workshop.checks.cycles pipeline workshop

format: $(STAMP) ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP) ## Regenerate the README's configuration table from pipeline/settings.py
	$(BIN)/python deploy/local/readme-config.py

IPTC_VOCABULARY ?= ../shared/data/iptc-mediatopic-en.jsonl
iptc-terms: $(STAMP) ## Re-derive pipeline/data/iptc_terms.yaml from the IPTC Media Topic vocabulary (CC BY 4.0)
	$(BIN)/python -m workshop.builders.iptc_terms $(IPTC_VOCABULARY) > pipeline/data/iptc_terms.yaml

CONLL_TRAIN ?= ../shared/eval/conll2003/train.iob2.txt
train-topics: $(STAMP) ## Re-learn pipeline/data/topic_corpus.yaml (term reliability) from unlabelled CoNLL-2003 train text
	$(BIN)/python -m workshop.builders.topic_corpus $(CONLL_TRAIN) > pipeline/data/topic_corpus.yaml

stack-up: $(STAMP) ## Start the local Kafka, Elasticsearch and CoreNLP
	$(BIN)/newswire stack up

stack-down: $(STAMP) ## Stop the local stack
	$(BIN)/newswire stack down

clean: ## Remove the venv and local stack data (stop the stack first)
	-$(BIN)/newswire stack down
	rm -rf $(VENV) .newswire .mypy_cache .ruff_cache .pytest_cache
