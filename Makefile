# The two commands: `make demo` (train -> compile -> verify on Lava -> report) and `make test`.
# `make bench` runs benchmarks/ (docs/performance.md), with the libraries it compares against.
# Both create .venv on first use. lava-nc 0.10.0 / lava-dl 0.6.0 declare Python <3.11 and pin an old
# torch, so they are installed with --no-deps; their real dependencies are in pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.snnc-installed
# torch and torchvision must be built together (lava-dl's netx imports torchvision): pin the pair.
TORCH  := torch==2.15.0 torchvision==0.29.2
LAVA   := lava-nc==0.10.0 lava-dl==0.6.0
DEMO   := demo-out
BENCH  := bench-out
BENCH_STAMP := $(VENV)/.snnc-bench-installed
# `make fuzz`: mutants per reader (compile and run paths get a quarter); docs/fuzzing-results.md
FUZZ_CASES ?= 600

.PHONY: demo test test-fast bench install browser clean fuzz fuzz-coverage

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python $(LAVA)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps neurobench==2.3.0
	# compile hwsim's numba kernels into numba's cache now (~1 min), not in the first snn-run (docs/performance.md, "Start-up")
	$(BIN)/python -m snnc.hwsim.parallel --warm-up
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/snn-train --dataset digits --arch mlp --rule stbp-rect --epochs 5 --out $(DEMO)/model.pt
	$(BIN)/snn-compile $(DEMO)/model.pt --target loihi --out $(DEMO)/build --verify 32 --strict
	$(BIN)/snn-run $(DEMO)/build --backend hwsim --dataset digits --samples 360
	$(BIN)/snn-run $(DEMO)/build --backend lava --dataset digits --samples 20
	$(BIN)/snn-report $(DEMO)/build > /dev/null && echo "snn-report $(DEMO)/build: wrote $(DEMO)/build/report.html"

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py --out $(BENCH)

# report.html is checked by rendering it in headless Chromium (tests/test_energy.py): Debian's
# chromium-headless-shell, installed once where we are root and it is missing.
browser:
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null; } || \
	  echo "no headless Chromium (not root?): the page-rendering test skips outside CI"

test: $(STAMP) browser
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Every file reader on FUZZ_CASES truncated, corrupted and adversarial files (tests/fuzzing.py); prints
# per reader the cases tried, accepted, clean errors and failures, and fails if there is any failure.
fuzz: $(STAMP)
	$(BIN)/python tests/fuzzing.py --cases $(FUZZ_CASES)

# Coverage-guided (atheris) on the readers that parse in-process; FUZZ_RUNS inputs each (tests/fuzz_coverage.py)
FUZZ_RUNS ?= 30000
FUZZ_STAMP := $(VENV)/.snnc-fuzz-installed
$(FUZZ_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,fuzz]"
	touch $(FUZZ_STAMP)

fuzz-coverage: $(FUZZ_STAMP)
	mkdir -p fuzz-out && cd fuzz-out && for k in onnx checkpoint cost_model; do \
	  ../$(BIN)/python ../tests/fuzz_coverage.py --kind $$k --runs $(FUZZ_RUNS) >$$k.out 2>$$k.log \
	    || { tail -5 $$k.log; exit 1; }; tail -1 $$k.out; done

clean:
	rm -rf $(VENV) $(DEMO) $(BENCH) fuzz-out
