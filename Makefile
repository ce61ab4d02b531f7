# The two commands of the quick start (`make run`, `make test`) and the
# developer conveniences around them. The real build is CMake.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
LISTEN     ?= 127.0.0.1:5000
DATA       ?= ./berth-data
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all setup build run install image test test-fast test-asan test-postgres test-s3 test-cluster test-replicas asan bench bench-cluster fuzz \
	format format-check layers clean screenshot

all: build

setup:
	@scripts/setup-deps.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTH_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@mkdir -p $(DATA)
	$(BUILD)/berth serve --listen $(LISTEN) --root $(DATA)

# The binary, berth(8), the example configuration, the systemd unit (deploy/systemd/) under
# $(DESTDIR)$(PREFIX); the service's own configuration in $(PREFIX)/etc/berth (/etc/berth for
# PREFIX=/usr) only when none is there yet.
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# berth's OCI image, with no container engine and no network (scripts/build-image.sh):
# $(BUILD)/image/layout (OCI layout, reference berth:<version>) and $(BUILD)/image/berth-image.tar.
image: build
	@scripts/build-image.sh $(BUILD) $(BUILD)/image

# The whole suite twice: the gcc release build, then a clang ASan+UBSan build.
test: test-fast test-asan

# The registry and ECR integration suites (and the clients) on PostgreSQL
# metadata: one server from tests/integration/lib/pg_fixture.py, a schema per
# berth. Not part of `make test` (about four minutes more); the storage unit
# tests' PostgreSQL pass (ctest label postgres) is.
test-postgres: build
	/usr/bin/python3 tests/integration/lib/pg_fixture.py ctest --test-dir $(BUILD) \
		-R 'integration/(oci|ecr|clients)/' -E 'ecr/test_lifecycle' --output-on-failure -j $(JOBS)

# The registry (OCI) and ECR integration suites with berth's blobs in S3: one
# OpenStack Swift (s3api) from tests/integration/lib/swift_fixture.py, a key
# prefix per berth. Not part of `make test` (about ten minutes on a busy
# machine); its bounded S3 pass is (ctest label s3, and
# tests/integration/storage/test_s3.py).
test-s3: build
	/usr/bin/python3 tests/integration/lib/swift_fixture.py ctest --test-dir $(BUILD) \
		-R 'integration/(oci|ecr)/' -E 'ecr/test_lifecycle' --output-on-failure -j $(JOBS)

# Replicas: several berths sharing one PostgreSQL and one S3 bucket (Swift), in
# front of them haproxy (tests/integration/cluster, ctest label cluster). Also in
# the gcc pass of `make test`; not under ASan.
test-cluster: build
	ctest --test-dir $(BUILD) -L cluster --output-on-failure -j $(JOBS)

# The registry (OCI) and ECR integration suites a second time with every berth they
# start made three replicas on one PostgreSQL and one Swift bucket behind haproxy,
# round-robin per request (tests/integration/lib/cluster_suites.py; ctest label
# replicas), and beside them cluster/test_gc_race for the issue's full two minutes
# (GC_RACE_SECONDS; make test runs it for 30 s). Not part of `make test`: its 15 to
# 20 minutes on a busy 2-core machine would break make test's 25-minute budget. CI
# runs it after make test (.ci/run).
GC_RACE_SECONDS ?= 120
test-replicas: build
	BERTH_TEST_GC_RACE_SECONDS=$(GC_RACE_SECONDS) ctest --test-dir $(BUILD) \
		-R '^replicas/|^integration/cluster/test_gc_race$$' --output-on-failure -j $(JOBS)

test-fast: build
	@scripts/check-format.sh
	@scripts/check-layers.py
	ctest --test-dir $(BUILD) -LE replicas --output-on-failure -j $(JOBS)

asan: setup
	@CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DBERTH_WERROR=ON \
		-DBERTH_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

test-asan: asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# Build the libFuzzer targets and fuzz each for FUZZ_SECONDS (default 60); the first
# one that crashes (or fails to start) stops the run with its log's tail.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: setup
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DBERTH_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@for f in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
		name=$$(basename $$f); mkdir -p $(FUZZ_BUILD)/corpus/$$name; \
		echo "== $$name"; \
		if ! $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			$(FUZZ_BUILD)/corpus/$$name tests/fuzz/corpus/$$name \
			>$(FUZZ_BUILD)/$$name.log 2>&1; then \
			tail -n 40 $(FUZZ_BUILD)/$$name.log; \
			echo "$$name failed (log: $(FUZZ_BUILD)/$$name.log)" >&2; exit 1; \
		fi; \
		tail -n 2 $(FUZZ_BUILD)/$$name.log; \
	done

bench: build
	@scripts/setup-deps.sh --bench
	@bench/run-bench.sh $(BUILD)

# The README's screenshots of the console (docs/images/console*.png), taken in headless
# Chromium from a berth started with sample images (tests/integration/console/screenshot.py).
screenshot: build
	BERTH_BIN=$(BUILD)/berth PYTHONPATH=tests/integration/lib \
		/usr/bin/python3 -B tests/integration/console/screenshot.py --out docs/images

# berth on S3 (Swift) + PostgreSQL against distribution's S3 driver on the same Swift, and
# one replica against three behind haproxy (docs/benchmarks.md). Never part of make test.
bench-cluster: build
	@scripts/setup-deps.sh --bench
	@/usr/bin/python3 -B bench/cluster-bench.py $(BUILD)

format:
	@git ls-files '*.c' '*.h' | xargs -r clang-format -i

format-check:
	@scripts/check-format.sh

layers:
	@scripts/check-layers.py

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
