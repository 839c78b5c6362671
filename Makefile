# The two newcomer commands are `make demo` and `make test`; .ci/run runs `make test`.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: demo test install install-test system-deps lint frontend clean

$(BIN)/uv:
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv

# Installed packages are compiled to bytecode as pip does: uv does not by default, and every
# process (kernels, jobs, the CLI) would then compile MLflow and pandas again as it starts.
UV_INSTALL := uv pip install --compile-bytecode --python $(BIN)/python

## Install the package (building the JupyterLab extension) into .venv.
install: $(BIN)/uv
	$(UV_INSTALL) -e .

## Train, save, alias and score a model on the embedded defaults (~/.sparkserve).
demo: install
	sparkserve demo

## Debian packages the tests drive for real (a browser, ...).
system-deps:
	bash scripts/install-system-deps.sh

# The develop link goes first: installing through it would write the wheel's install.json
# into jupyter_sparkserve/labextension, and the next wheel build would then hold it twice.
install-test: system-deps $(BIN)/uv
	link=$(VENV)/share/jupyter/labextensions/jupyter_sparkserve; if [ -L $$link ]; then rm $$link; fi
	$(UV_INSTALL) -e ".[test]"
	jupyter labextension develop --overwrite .

lint: install-test
	ruff check .
	ruff format --check .

## Install everything the tests need, then run the whole suite.
test: lint
	python -m pytest

## Rebuild the labextension after changing src/ or style/.
frontend: install
	jlpm install
	jlpm build

clean:
	rm -rf $(VENV) node_modules lib tsconfig.tsbuildinfo jupyter_sparkserve/labextension
