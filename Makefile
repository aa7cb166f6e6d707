# Developer entry points. `make test` is the command CI and the README use.

# The chart tests' Python packages live in a project virtualenv, so a system
# Python that refuses pip installs (PEP 668) is never touched.
VENV ?= .venv
PYTHON ?= $(CURDIR)/$(VENV)/bin/python
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE ?= ghcr.io/stagegate/stagegate:$(VERSION)
# The chart tests run $(PYTHON) too (tests/integration/helm.rs reads PYTHON).
export PYTHON

.PHONY: test test-deps test-chart crds image

## Everything: Python test dependencies, then every Rust test.
test: test-deps
	$(CARGO) test --locked

## Python packages the chart tests need (Helm's Go SDK via helm-python-sdk),
## installed into $(VENV); Chromium and its WebDriver for the console tests
## (Debian packages, installed only when missing); and the PostgreSQL server
## binaries the store tests start (as a non-root user, in a temporary directory),
## from the Debian package when missing, without the package's own always-running cluster.
test-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update && apt-get install -y chromium chromium-driver; }
	@[ -x $(PYTHON) ] || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r tests/requirements.txt
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  mkdir -p /etc/postgresql-common && \
	  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf && \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    -o Dpkg::Options::=--force-confold --no-install-recommends postgresql; }

## Only the Helm chart checks.
test-chart: test-deps
	$(CARGO) test --locked --test integration helm

## Regenerate crds/ and charts/stagegate/crds/ from the Rust types.
crds:
	$(CARGO) run --locked -- crds --out-dir crds
	$(CARGO) run --locked -- crds --out-dir charts/stagegate/crds

## Build the container image (needs a Docker or BuildKit engine; not in CI).
image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .
