# Two entry points for newcomers (see README): `make demo` and `make test`.
# Both create .venv and install everything first; re-running skips what is done.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch (on these machines it comes from local disk). GPU users: see README.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test browser
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: setup
	$(PY) train_network_textboost.py --config_file config_templates/demo.toml --overwrite

# The eval-report test opens eval.html in a real headless Chromium (Debian's package, no download by a
# test tool). Installed here when it is missing and this is root with apt-get; otherwise that one test
# is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium for the browser test (apt-get install chromium) ..."; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "warning: apt-get could not install chromium; the browser test will be skipped"; \
	  else \
	    echo "note: chromium is missing and installing it needs root and apt-get; the browser test will be skipped"; \
	  fi; }

# pytest exits 5 when it collected no test; that is not a failure of the setup.
test: setup browser
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc
