# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Every install goes through constraints.txt: an unpinned torch would pull GBs of CUDA wheels.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

FASHION := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: install data demo test bench zoo clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP) data

# Fashion-MNIST (Debian's dataset-fashion-mnist) where the system allows: as root with apt-get;
# otherwise skipped quietly (suites that need it say how to install it; its tests skip).
data:
	@test -e $(FASHION) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; } ; } || true

demo: install
	$(OFFLINE) $(VENV)/bin/genbench demo --out results/runs/demo-$$(date +%Y%m%d-%H%M%S)

# the report's browser test needs Debian's chromium: installed when root with apt, else that test skips
test: install
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; } || \
	  echo "chromium not installed: the report's browser test will be skipped"; }
	$(OFFLINE) $(PY) -m pytest -q

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(OFFLINE) $(PY) $$b || exit 1; done

zoo: install
	$(OFFLINE) $(VENV)/bin/genbench zoo train

clean:
	rm -rf $(VENV) results/runs
