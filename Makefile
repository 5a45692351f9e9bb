# voxq: the two commands a newcomer runs are `make run` and `make test`.
SHELL := /bin/bash
JOBS ?= 2
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build test test-fast test-asan test-tsan bench run format lint clean fuzz deb package-test test-races chaos

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The whole suite, then again under ASan+UBSan and under TSan; each run gets a
# throwaway PostgreSQL server (scripts/with-postgres.sh).
test: test-fast test-asan test-tsan

test-fast: build
	cd $(BUILD) && ../scripts/with-postgres.sh ctest --output-on-failure -j $(JOBS)
	scripts/scan_test_logs.sh $(BUILD)

test-asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVOXQ_SANITIZE=address,undefined -DVOXQ_BUILD_BENCH=OFF
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ../scripts/with-postgres.sh ctest --output-on-failure -j $(JOBS)
	scripts/scan_test_logs.sh build-asan

test-tsan: deps
	cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVOXQ_SANITIZE=thread -DVOXQ_BUILD_BENCH=OFF
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" ../scripts/with-postgres.sh ctest --output-on-failure -j $(JOBS)
	scripts/scan_test_logs.sh build-tsan

# The concurrency, wake-up and multi-process tests, five times each (CI): a race
# that fails one run in ten shows up here before it shows up for a newcomer.
RACES := Concurren|Racing|Woken|Wakes|Processes|Sigterm|Sigkilled|KilledAt|AKilled
test-races: build
	cd $(BUILD) && ../scripts/with-postgres.sh ctest --output-on-failure -j $(JOBS) \
	  -R '$(RACES)' --repeat until-fail:5

# Every libFuzzer target for FUZZ_SECONDS each (clang, ASan+UBSan), starting from
# the committed seed corpora in tests/fuzz/corpus.
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DVOXQ_SANITIZE=address,undefined -DVOXQ_FUZZ=ON -DVOXQ_BUILD_TESTS=OFF -DVOXQ_BUILD_BENCH=OFF \
	  -DVOXQ_BUILD_PYTHON=OFF
	cmake --build build-fuzz -j $(JOBS)
	scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

# A Debian package (CPack): build-deb/voxq_<version>_<arch>.deb. -O2 as every
# other build (GCC 12 -O3 has false -Wrestrict alarms in std::string); stripped.
deb: deps
	cmake -S . -B build-deb -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	  -DVOXQ_DEB=ON -DVOXQ_BUILD_TESTS=OFF -DVOXQ_BUILD_BENCH=OFF
	cmake --build build-deb -j $(JOBS)
	cd build-deb && cpack -G DEB

# The package installed with apt into a fresh Debian 12 root (debootstrap), its
# services run as the voxq user; systemd-analyze verify and lintian (CI runs it).
package-test: deb
	scripts/install-deps.sh --package
	tests/package/deb_test.sh build-deb

bench: build
	scripts/bench.sh

# The full crash and fault campaign (about 40 minutes): 1,000+ trials on SQLite,
# 200+ on PostgreSQL; the table lands in chaos-out/table.md (docs/reliability.md
# quotes the latest). The short one runs in `make test` (ctest chaos.short).
# CHAOS_ARGS="--only pg-kill,pg-server,pg-proxy" runs some fault kinds only.
chaos: build
	/usr/bin/python3 tests/chaos/chaos.py --scale full --voxq $(BUILD)/bin/voxq \
	  --fault-vfs $(BUILD)/tests/fault_vfs.so --python-path $(BUILD)/python --out chaos-out $(CHAOS_ARGS)

# Only what the demo runs: the voxq command and its espeak helper.
run: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target voxq_cli voxq_espeak
	scripts/run.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

lint: build
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.hpp')
	clang-tidy -p $(BUILD) --quiet $$(git ls-files 'src/*.cpp')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz build-deb build-wheel
