# zhida — the two commands that matter: `make demo` and `make test`. Both install what they need first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := kamailio kamailio-json-modules kamailio-extra-modules kamailio-utils-modules \
	kamailio-sqlite-modules kamailio-postgres-modules rtpengine-daemon sip-tester espeak-ng sox sqlite3 iproute2 prometheus \
	ansible ansible-lint nftables acl python3-venv python3-dev postgresql
STAMP := $(VENV)/.installed
# setuptools 81 dropped pkg_resources, which lac's setup.py imports (below); grpcio-tools needs >= 77.
SETUPTOOLS := "setuptools>=77,<81"

# Strictly typed: the pure codecs, the call package and the configuration (settings in pyproject.toml).
MYPY_STRICT := control/zhida/codecs control/zhida/call control/zhida/config.py

.PHONY: all env apt venv demo test lint proto clean bench

all: demo

env: apt venv

# Debian's packages; skipped when every binary is already there (a developer box).
apt:
	@if ! command -v kamailio >/dev/null || ! command -v rtpengine >/dev/null || ! command -v sipp >/dev/null \
	   || ! command -v espeak-ng >/dev/null || ! command -v prometheus >/dev/null \
	   || ! command -v ansible-playbook >/dev/null || ! command -v ansible-lint >/dev/null \
	   || ! ls /usr/lib/*/kamailio/modules/db_postgres.so >/dev/null 2>&1 \
	   || ! $(PYTHON) -c "import ensurepip" 2>/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(SETUPTOOLS) wheel
	$(BIN)/pip install -q -e ".[dev]" $(SETUPTOOLS)
	# lac's setup.py imports pkg_resources: build it against the venv's setuptools.
	$(BIN)/pip install -q --no-build-isolation lac==2.1.2
	touch $@

demo: env
	$(BIN)/zhida demo

test: env
	$(BIN)/ruff check control tests bench
	$(BIN)/mypy $(MYPY_STRICT)
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check control tests bench
	$(BIN)/mypy $(MYPY_STRICT)

# Regenerates the committed Python code of proto/zhida/v1.
proto: venv
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=control --pyi_out=control \
		--grpc_python_out=control proto/zhida/v1/*.proto

bench: env
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) run
