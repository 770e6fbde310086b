# Entry points; README.md documents `make run` and `make test`.
SHELL := /bin/bash
ENV := source scripts/env.sh &&
SNAPSHOT ?= 2026-11-01

.PHONY: setup run scaling test lint bench cluster-up cluster-down images test-cluster e2e

setup:
	./scripts/setup.sh

# Set-up, then one full run of synthllm_generate on the sample snapshot with the local model.
run: setup
	$(ENV) ./scripts/run_sample.sh $(SNAPSHOT)

# The scaling demo on the published sample snapshot (after `make run`).
scaling: setup
	$(ENV) ./scripts/run_scaling.sh $(SNAPSHOT)

# Set-up, lint, then every test that needs no GPU.
test: setup lint
	$(ENV) python -m pytest -q

lint:
	$(ENV) ruff check . && ruff format --check .

bench: setup
	$(ENV) python benchmarks/ingest_filter.py

# A local single-node Kubernetes 1.34 cluster (scripts/cluster/); state and caches live
# outside the checkout. `source scripts/cluster/env.sh` then points kubectl at it.
cluster-up:
	./scripts/cluster/up.sh

cluster-down:
	./scripts/cluster/down.sh

# This checkout's images (scripts/build_images.sh), loaded into the local cluster's node.
images: setup
	$(ENV) ./scripts/build_images.sh --load --allow-dirty

# The tests that need real pods: cluster, images, S3 API and k8s/ brought up first.
test-cluster: setup
	$(ENV) ./scripts/k8s/test-cluster.sh

# The whole DAG on the local cluster, every task a pod, then the tiny_cpu scaling study.
e2e: setup
	$(ENV) ./scripts/k8s/e2e.sh
