# Needs only GNU make and python3 (3.11+): the first target run creates .venv and installs into it.
VENV := .venv
PYTHON := $(VENV)/bin/python
PYTHON3 ?= python3
INSTALLED := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := test
.PHONY: venv run test token lint clean distclean

venv: $(INSTALLED)

# Install output goes to stderr, so `make -s token` prints the token alone on stdout.
# An existing .venv is reused as it is: re-running `venv` over it could swap its interpreter.
$(INSTALLED): requirements.txt requirements-dev.txt
	@echo "Installing requirements-dev.txt into $(VENV) ..." >&2
	@test -x $(PYTHON) || $(PYTHON3) -m venv $(VENV) >&2
	@$(PYTHON) -m pip install --quiet -r requirements-dev.txt >&2
	@touch $@

run: $(INSTALLED)
	$(PYTHON) -m chalicelib.local.run

test: $(INSTALLED)
	$(PYTHON) -m pytest -q

token: $(INSTALLED)
	@$(PYTHON) -m chalicelib.local.token $(if $(CUSTOMER),--customer $(CUSTOMER))

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
