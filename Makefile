# Two entry points for newcomers (see README): `make demo` and `make test`.
# Both create .venv and install everything first; re-running skips what is done.
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch that `make setup` installs FIRST (pip words, not quoted, so an index can follow):
#   default            torch==2.13.0 from your pip's default sources. On Linux PyPI serves a CUDA build
#                      (~3 GB of wheels); the project's own machines have a CPU wheel on local disk instead.
#   CPU anywhere       make setup TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
#   GPU (CUDA 12.4)    make setup TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
# A torch already importable in $(VENV) is KEPT unless TORCH_SPEC is given on the command line or in the
# environment (then it is installed over it), so "install torch into .venv yourself, then make setup" works.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test browser
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if [ "$(origin TORCH_SPEC)" = "file" ] && $(PY) -c "import torch" >/dev/null 2>&1; then \
	  echo "keeping the torch already in $(VENV): $$($(PY) -c 'import torch; print(torch.__version__)') (set TORCH_SPEC=... to replace it)"; \
	else \
	  echo "installing torch: $(TORCH_SPEC)"; \
	  $(PY) -m pip install -q $(TORCH_SPEC) || exit 1; \
	fi
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# The demo: TextBoost learns a yellow square from one photo on the pretrained toy base, then base vs adapter
# is measured by the toy world's oracle (table + grid.png). One torch thread: on a 2-core machine doing
# anything else, two threads spin against each other and the run gets many times slower.
demo: setup
	OMP_NUM_THREADS=1 $(PY) train_network_textboost.py --config_file config_templates/demo.toml --overwrite
	OMP_NUM_THREADS=1 $(VENV)/bin/textboost-toyworld evaluate demo_square --reference examples/toyworld/yellow_square/1_square/yellow_square.png

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
