# micmon: `make demo` and `make test` set up everything on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := ffmpeg pulseaudio pulseaudio-utils mosquitto mosquitto-clients python3-venv python3-pip \
	chromium chromium-driver
BENCH_PACKAGES := sound-theme-freedesktop asterisk-core-sounds-en-wav \
	wesnoth-1.16-data lomiri-sounds yaru-theme-sound deepin-sound-theme sound-icons psi-plus-sounds \
	eiskaltdcpp-sounds pingus-data frozen-bubble-data extremetuxracer-data espeak-ng flite
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: help system venv test lint demo bench bench-deps clean

help:
	@echo "make demo   install everything and run micmon on a generated example"
	@echo "make test   install everything and run the linters and the test suite"
	@echo "make bench  install everything and run the benchmarks in bench/"

system:
	$(APT) update
	$(APT) install -y --no-install-recommends $(SYSTEM_PACKAGES)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train,plot,web]'
	touch $@

venv: $(BIN)/.installed

lint: venv
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)  # examples/ keep the original README's text
	$(BIN)/mypy src

test: system venv lint
	$(BIN)/python -m pytest -q --durations=15  # the slowest tests, to keep CI short

demo: system venv
	$(BIN)/micmon demo micmon-demo --force

bench-deps: system venv
	$(APT) install -y --no-install-recommends $(BENCH_PACKAGES)

# every benchmark that runs on its own defaults, in order (hard_level.py and hard_forms.py probe the networks
# hard_bench.py saved); bench/hard_pairs.py compares output folders named on its command line;
# bench/embedding_probe.py (issue 8's thirty-first round) needs a network fetched as its docstring says
BENCH_SCRIPTS = accuracy_bench cli_bench datagen_bench monitor_bench predict_latency window_cost \
	real_corpus hard_corpus hard_bench hard_replay
bench: bench-deps
	for script in $(BENCH_SCRIPTS); do $(BIN)/python bench/$$script.py || exit 1; done
	$(BIN)/python bench/hard_level.py --out bench/out/hard_bench --room
	$(BIN)/python bench/hard_forms.py --out bench/out/hard_bench
	$(BIN)/python bench/hard_instances.py --out bench/out/hard_bench

clean:
	rm -rf $(VENV) micmon-demo .pytest_cache .ruff_cache
