# The two commands of the README. Both install what is missing first (scripts/setup.sh).
BUILD_PRESET ?= release
JOBS ?= $(shell nproc)

.PHONY: demo test setup build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake --preset $(BUILD_PRESET) >/dev/null
	@cmake --build --preset $(BUILD_PRESET) -j $(JOBS)

demo: build
	@./build/$(BUILD_PRESET)/tools/qmm/qmm demo

test: build
	@ctest --preset $(BUILD_PRESET) -j $(JOBS)
