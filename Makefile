# The two newcomer commands are `make demo` and `make test`; .ci/run runs `make test`.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

DEMO_NOTEBOOK := notebooks/sparkserve-demo.ipynb
LABEXTENSION := jupyter_sparkserve/labextension/package.json
FRONTEND_SOURCES := package.json tsconfig.json $(wildcard src/*.ts src/*.tsx style/*)

.PHONY: demo lab test install install-test drop-develop-link system-deps lint frontend clean

$(BIN)/uv:
	@echo "==> Creating $(VENV) and installing uv into it"
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv

# Installed packages are compiled to bytecode as pip does: uv does not by default, and every
# process (kernels, jobs, the CLI) would then compile MLflow and pandas again as it starts.
UV_INSTALL := uv pip install --compile-bytecode --python $(BIN)/python

## Install the package, JupyterLab and a kernel into .venv, building the JupyterLab extension.
# Three visible steps instead of one silent one: uv would build the extension inside its
# build backend and show nothing for a minute. Built here first, the extension is newer than
# src/, so hatch-jupyter-builder skips its own build in step 3 and the wheel reuses it.
install: $(BIN)/uv
	@$(MAKE) --no-print-directory drop-develop-link
	@echo "==> [1/3] Installing the dependencies, JupyterLab and a kernel into $(VENV) (uv; a minute or two the first time)"
	$(UV_INSTALL) -r pyproject.toml --extra lab
	@$(MAKE) --no-print-directory $(LABEXTENSION)
	@echo "==> [3/3] Installing jupyter_sparkserve itself (editable) with the extension built above"
	$(UV_INSTALL) -e ".[lab]"

$(LABEXTENSION): $(FRONTEND_SOURCES)
	@echo "==> [2/3] Building the JupyterLab extension: jlpm install, then jlpm build (about a minute the first time)"
	jlpm install
	jlpm build

## Train, save, alias and score a model on the embedded defaults (~/.sparkserve).
demo: install
	@echo "==> Running the tour: sparkserve demo"
	sparkserve demo
	@echo
	@echo "Next: make lab    (JupyterLab on $(DEMO_NOTEBOOK), the sparkserve tab in its left sidebar)"

## Open JupyterLab on the demo notebook: save, score, deploy and snippets from a notebook.
lab: $(BIN)/jupyter-lab
	jupyter lab $(DEMO_NOTEBOOK)

$(BIN)/jupyter-lab:
	@$(MAKE) --no-print-directory install

## Debian packages the tests drive for real (a browser, ...).
system-deps:
	bash scripts/install-system-deps.sh

# The develop link goes first: installing through it would write the wheel's install.json
# into jupyter_sparkserve/labextension, and the next wheel build would then hold it twice.
drop-develop-link:
	@link=$(VENV)/share/jupyter/labextensions/jupyter_sparkserve; if [ -L $$link ]; then rm $$link; fi

install-test: system-deps $(BIN)/uv drop-develop-link
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
