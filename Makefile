# Two commands set everything up on a fresh machine (Python 3.11 with venv):
#   make run    create .venv, install maskwork-core (all the code) editable, open the window
#   make test   create .venv, install maskwork-core with its test tools, run the whole suite
# Both install with the machine-specific pins of constraints/dev.txt (CONSTRAINTS= drops them).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints/dev.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: run test bench wheels bundle clean

# Every extra: the suite tests deep learning, batch, SAM and napari too.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_CONSTRAINTS) -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/maskwork $(ARGS)

test: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# Every benchmark prints its table (slow: the plain 12 MP GrabCut alone takes minutes).
bench: $(VENV)/.installed
	for script in benchmarks/*.py; do QT_QPA_PLATFORM=offscreen $(PY) $$script || exit 1; done

# The wheels of the two distributions (README: Install): maskwork-core (this folder, all the
# code) and maskwork (packaging/maskwork-app: maskwork-core[app], no code), into dist/.
# `pip install --find-links dist maskwork` installs the window from them.
APP_PROJECT := packaging/maskwork-app
wheels: $(VENV)/.installed
	$(PY) -m build --wheel --no-isolation --outdir dist .
	$(PY) -m build --wheel --no-isolation --outdir dist $(APP_PROJECT)

# The desktop bundle (window and classical operators, no deep learning): dist/maskwork/,
# built in its own venv, made afresh each time, so that nothing from the test extras or
# from an earlier build (such as the code-carrying `maskwork` distribution before the
# maskwork-core split) slips in.
BUNDLE_VENV ?= build/bundle-venv
bundle:
	rm -rf $(BUNDLE_VENV)
	$(PYTHON) -m venv $(BUNDLE_VENV)
	$(BUNDLE_VENV)/bin/python -m pip install -q --upgrade pip
	$(BUNDLE_VENV)/bin/python -m pip install -q $(PIP_CONSTRAINTS) '.[app]' 'pyinstaller>=6.10'
	$(BUNDLE_VENV)/bin/python packaging/collect_licenses.py build/licenses
	$(BUNDLE_VENV)/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/maskwork.spec

clean:
	rm -rf $(VENV) build dist *.egg-info $(APP_PROJECT)/build $(APP_PROJECT)/*.egg-info
