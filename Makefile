# Two entry points for newcomers (see README): `make demo` and `make test`.
# Both create .venv and install everything first; re-running skips what is done.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch (on these machines it comes from local disk). GPU users: see README.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: setup
	$(PY) train_network_textboost.py --config_file config_templates/demo.toml --overwrite

# pytest exits 5 when it collected no test; that is not a failure of the setup.
test: setup
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc
