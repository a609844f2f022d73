# Two commands do all the set-up on a fresh Debian 12 machine:
#   make run    installs what is missing, builds, and runs the demo (index real music and sound
#               logos, scan a video made of music under speech plus a logo)
#   make test   installs what is missing, builds, and runs every test
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build run test bench format clean

all: build

deps:
	bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

run: build
	bash scripts/demo.sh $(CURDIR)/$(BUILD)/earmark $(CURDIR)/demo-out

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The identification benchmark on ../shared/bench (builds the corpus and queries first).
bench: deps
	bash ../shared/bench/make_corpus.sh
	/usr/bin/python3 ../shared/bench/make_queries.py --per-cell 4
	bash bench/run-benchmark.sh $(HOME)/.cache/earmark-bench/corpus/index_dev.tsv \
	  $(HOME)/.cache/earmark-bench/corpus/queries/dev bench-out
	/usr/bin/python3 ../shared/bench/score.py \
	  $(HOME)/.cache/earmark-bench/corpus/queries/dev/truth.jsonl bench-out/results.jsonl

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) build-release demo-out bench-out
