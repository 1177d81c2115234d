# QKDNet: make run (start the default network with a live view), make test (everything).
# Every target installs what is missing first (Debian packages through apt-get).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TOPOLOGY ?= Topologies/beijing-shanghai.yaml
RUN_DIR ?=
SWIFT ?= swift
RELEASE_FLAGS := -c release --static-swift-stdlib

VENV := .build/venv
QKD014_CLIENT_VERSION := 0.9.0

TIME_SCALE ?=
RUN_DIR_ARG := $(if $(RUN_DIR),--run-dir $(RUN_DIR),)
TIME_SCALE_ARG := $(if $(TIME_SCALE),--time-scale $(TIME_SCALE),)
RELEASE_BIN = $(shell $(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)

.PHONY: help deps build release up down status run test bench lint check clean plot scenario photos

help:
	@echo "make run        install, build, start $(TOPOLOGY) with a live view (Ctrl-C stops it; TIME_SCALE=0.05 on few cores)"
	@echo "make test       install, build, run every test"
	@echo "make up / down  start (TOPOLOGY=...) / stop a network in the background"
	@echo "make status     qkdctl status of the running network"
	@echo "make bench      benchmarks (release build), printing numbers"
	@echo "make scenario   SCENARIO=Topologies/scenarios/... : play a timeline of attacks and faults, write a report"
	@echo "make photos     Jinan-1: two photos Jinan -> Stellenbosch, one-time pad with keys that crossed the satellite"
	@echo "make check      lint (strict build) + tests"

deps:
	@missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	pkg-config --exists libzmq 2>/dev/null || missing="$$missing libzmq3-dev"; \
	pkg-config --exists sqlite3 2>/dev/null || missing="$$missing libsqlite3-dev"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl ca-certificates"; \
	command -v tcpdump >/dev/null 2>&1 || [ -x /usr/sbin/tcpdump ] || missing="$$missing tcpdump"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi; \
	command -v $(SWIFT) >/dev/null 2>&1 || { echo "error: swift is not on PATH (Swift 6.x toolchain required)"; exit 1; }
	@# The ETSI GS QKD 014 client from PyPI that the API tests run (its own virtualenv).
	@if [ ! -x $(VENV)/bin/qkd014-client ]; then \
	  echo "installing etsi-qkd-014-client $(QKD014_CLIENT_VERSION) into $(VENV)"; \
	  python3 -m venv $(VENV) && $(VENV)/bin/pip install -q --disable-pip-version-check etsi-qkd-014-client==$(QKD014_CLIENT_VERSION); \
	fi

build: deps
	$(SWIFT) build --build-tests

release: deps
	$(SWIFT) build $(RELEASE_FLAGS)

up: release
	"$(RELEASE_BIN)/qkdctl" up --topology "$(TOPOLOGY)" $(RUN_DIR_ARG) $(TIME_SCALE_ARG)

down: release
	"$(RELEASE_BIN)/qkdctl" down $(RUN_DIR_ARG)

status: release
	"$(RELEASE_BIN)/qkdctl" status $(RUN_DIR_ARG)

# up + live view until Ctrl-C + down (qkdctl run traps SIGINT and stops the nodes).
run: release
	"$(RELEASE_BIN)/qkdctl" run --topology "$(TOPOLOGY)" $(RUN_DIR_ARG) $(TIME_SCALE_ARG)

SCENARIO ?= Topologies/scenarios/line-3-tour.yaml

# Starts the scenario's network (unless it runs), plays the timeline, writes the report, stops it.
scenario: release
	"$(RELEASE_BIN)/qkdctl" scenario run "$(SCENARIO)" $(RUN_DIR_ARG)

# The Jinan-1 story: starts jinan1-stellenbosch.yaml, sends docs/photos/*.png from SAE-Jinan to
# SAE-Stellenbosch sealed with ETSI 014 keys relayed through the satellite, checks them bit for
# bit there, reports key consumed and passes waited, stops the network (non-zero on a mismatch).
photos: release
	"$(RELEASE_BIN)/qkdctl" photos $(RUN_DIR_ARG)

# The satellite networks (each pass at ten times real time, every core busy) and the 16-city
# mesh (105 node processes) run on their own after the others, so that no other network competes
# with them for the CPU (a line-3 test starved beside them: no block in 120 s).
test: build
	$(SWIFT) test --skip-build --skip MeshTests --skip SatelliteNetworkTests
	$(SWIFT) test --skip-build --filter SatelliteNetworkTests
	$(SWIFT) test --skip-build --filter MeshTests

bench: release
	"$(RELEASE_BIN)/qkd-bench"

# The pure targets import nothing that does I/O (.ci/check-pure-imports names any that does);
# the strict build has a build folder of its own, so lint and test do not rebuild each other's.
lint: deps
	bash .ci/check-pure-imports
	$(SWIFT) build --scratch-path .build-lint --build-tests -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error

check: lint test

clean:
	rm -rf .build .build-lint .run

# Key rate versus distance (docs/keyrate-vs-distance.svg) from qkdctl sim link, and the
# finite-key length for N = 1e8, 1e10, 1e12 against the asymptotic bound and PLOB
# (docs/finite-key-vs-distance.svg) from qkdctl sim bound.
plot: release
	python3 docs/tools/plot_finite_key.py "$(RELEASE_BIN)/qkdctl" docs/finite-key-vs-distance.svg
	python3 docs/tools/plot_keyrate.py "$(RELEASE_BIN)/qkdctl" docs/keyrate-vs-distance.svg
