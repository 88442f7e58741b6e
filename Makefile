# gopd: the two promises of the README.
#   make demo   installs what is missing, builds, runs the main job on built-in data
#   make test   installs what is missing, builds, passes the whole test suite
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_DIR ?= build
CMAKE_FLAGS ?=

.PHONY: all setup configure build test demo rlvr-demo bench fuzz golden-cpus gpu-bundle format clean

all: build

setup:
	@bash scripts/setup.sh

configure:
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: setup build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

demo: setup build
	@bash scripts/demo.sh $(BUILD_DIR)/bin/gopd

rlvr-demo: setup build
	@bash scripts/rlvr_demo.sh $(BUILD_DIR)/bin/gopd

bench: setup build
	@bash scripts/bench.sh $(BUILD_DIR)/bin/gopd

# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for FUZZ_SECONDS (default 60);
# FUZZ_ARGS passes more, e.g. FUZZ_ARGS="--runs 1000000 tokenizer". See scripts/fuzz.sh.
fuzz:
	@bash scripts/fuzz.sh $(FUZZ_ARGS)

# Runs the golden runs natively and under qemu-user emulating Intel and AMD processors: the
# same bits on each (scripts/golden_cpus.sh; GOLDEN_CPUS="Haswell-v4 EPYC ..." picks models).
golden-cpus: setup build
	@bash scripts/setup.sh --qemu
	@BUILD_DIR=$(BUILD_DIR) bash scripts/golden_cpus.sh $(GOLDEN_CPUS)

# Packs what scripts/gpu_check.sh runs on a GPU machine without network (.gpu_bundle/).
gpu-bundle: setup build
	@bash scripts/gpu_check.sh --bundle $(BUILD_DIR)

format:
	@find include src tests bench kernels -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \
	  | xargs -r clang-format -i

clean:
	@rm -rf $(BUILD_DIR)
