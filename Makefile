# Two commands set everything up on a fresh machine (Python 3.11 with venv):
#   make run    create .venv, install maskwork, open the window
#   make test   create .venv, install maskwork with its test tools, run the whole suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/maskwork $(ARGS)

test: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# Every benchmark prints its table (slow: the plain 12 MP GrabCut alone takes minutes).
bench: $(VENV)/.installed
	for script in benchmarks/*.py; do QT_QPA_PLATFORM=offscreen $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
