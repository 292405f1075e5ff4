# nmfsep: every set-up step lives here, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test bench lint figures clean

KERNELS := $(VENV)/.kernels-stamp

install: $(STAMP) $(KERNELS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Compile the numba kernels into their on-disk cache (about 1-2 minutes), so no run pays for it;
# again whenever the kernels change (an edit makes numba's cache stale).
$(KERNELS): $(STAMP) nmfsep/nmf/kernels.py nmfsep/nmf/spatial_kernels.py
	$(BIN)/python -c "from nmfsep.nmf.kernels import warm_up; warm_up()"
	touch $(KERNELS)

# Separate the shipped piano sample into its three pitches: separated/hotcrossbuns_piano/c1..c3.wav
demo: install
	$(BIN)/nmfsep separate samples/hotcrossbuns_piano.wav -m 3 --force

test: install
	$(BIN)/python -m pytest -q

BENCH_STAMP := $(VENV)/.bench-stamp

# The benchmarks' own extra (pyroomacoustics, for bench/stereo_baselines.py's FastMNMF baselines).
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $(BENCH_STAMP)

# Speed and memory next to scikit-learn, the machine bound and FastMNMF (20-25 minutes): writes bench/results.md.
bench: install $(BENCH_STAMP)
	$(BIN)/python bench/run.py

# The README's figure, drawn from the shipped sample (commit docs/overview.png after running it).
figures: install
	$(BIN)/nmfsep plot samples/hotcrossbuns_piano.wav -m 3 -o docs/overview.png --force

lint: install
	$(BIN)/ruff check nmfsep tests bench
	$(BIN)/ruff format --check nmfsep tests bench

clean:
	rm -rf $(VENV) separated .pytest_cache build *.egg-info
