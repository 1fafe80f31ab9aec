//! Bad input through the whole engine gives a named error and leaves the engine usable:
//! truncated and malformed files, unsupported architectures, prompts longer than the context,
//! out-of-range token ids.

use aigc::engine::{Engine, LoadOptions};
use aigc::generate::GenOptions;
use aigc::sampling::SamplerConfig;
use aigc::source::{FileSource, SliceSource};
use aigc::Error;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn model_bytes(rel: &str) -> Vec<u8> {
    let path = format!("{ROOT}/{rel}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run ./build.sh setup and ./build.sh fixtures)"))
}

fn load_bytes(bytes: Vec<u8>) -> Result<Engine, Error> {
    pollster::block_on(Engine::load(&SliceSource(bytes), &LoadOptions { ctx: 64, ..Default::default() }, &mut |_, _| {}))
}

#[test]
fn truncated_model_is_a_format_error() {
    let bytes = model_bytes("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    for cut in [0usize, 3, 100, 1_000_000] {
        match load_bytes(bytes[..cut].to_vec()) {
            Err(e) => assert_eq!(e.name(), "ModelFormatError", "cut at {cut}: {e}"),
            Ok(_) => panic!("a file cut at {cut} bytes loaded"),
        }
    }
    // Header intact, tensor data one byte short.
    match load_bytes(bytes[..bytes.len() - 1].to_vec()) {
        Err(e) => assert_eq!(e.name(), "ModelFormatError", "{e}"),
        Ok(_) => panic!("a file missing its last byte loaded"),
    }
}

#[test]
fn unknown_architecture_is_unsupported() {
    let mut bytes = model_bytes("target/fixtures/tiny-qwen2.gguf");
    // Rewrite the value of general.architecture ("qwen2" → "qwenX"); the keys keep their names.
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("key present") + key.len();
    // u32 value type, u64 length, then the string
    let value = at + 4 + 8;
    assert_eq!(&bytes[value..value + 5], b"qwen2");
    bytes[value + 4] = b'X';
    match load_bytes(bytes) {
        Err(e) => {
            assert_eq!(e.name(), "UnsupportedModelError", "{e}");
            assert!(e.to_string().contains("qwenX"), "{e}");
        }
        Ok(_) => panic!("an unknown architecture loaded"),
    }
}

/// The small qwen2 fixture model, loaded for a context of `ctx` tokens.
fn tiny_engine(ctx: usize) -> Engine {
    let path = format!("{ROOT}/target/fixtures/tiny-qwen2.gguf");
    let src = FileSource::open(std::path::Path::new(&path)).expect("run ./build.sh fixtures");
    pollster::block_on(Engine::load(&src, &LoadOptions { ctx, ..Default::default() }, &mut |_, _| {})).expect("load")
}

#[test]
fn prompt_longer_than_context_then_engine_still_works() {
    let mut engine = tiny_engine(32);
    let opts = GenOptions { max_tokens: 4, sampler: SamplerConfig::greedy(), stop: vec![] };
    let long: Vec<u32> = (0..40).map(|i| 100 + i).collect();
    match pollster::block_on(engine.generate(&long, &opts, &mut |_| true)) {
        Err(Error::ContextOverflow { prompt: 40, ctx: 32 }) => {}
        other => panic!("expected ContextOverflowError, got {:?}", other.map(|o| o.tokens)),
    }
    let bad = [engine.model.cfg.vocab as u32 + 5];
    match pollster::block_on(engine.generate(&bad, &opts, &mut |_| true)) {
        Err(e) => assert_eq!(e.name(), "InvalidOptionError", "{e}"),
        Ok(_) => panic!("an out-of-vocabulary token id was accepted"),
    }
    // The engine is still usable, and generation fills the context up to its end at most.
    let out = pollster::block_on(engine.generate(&[100, 101, 102], &opts, &mut |_| true)).expect("generate");
    assert_eq!(out.tokens.len(), 4);
    let opts = GenOptions { max_tokens: 1000, ..opts };
    let out = pollster::block_on(engine.generate(&[100, 101, 102], &opts, &mut |_| true)).expect("generate");
    assert!(out.tokens.len() <= 32 - 3 + 1, "generated past the context: {}", out.tokens.len());
}

#[test]
fn cancelling_stops_and_the_next_generation_succeeds() {
    let mut engine = tiny_engine(64);
    let opts = GenOptions { max_tokens: 20, sampler: SamplerConfig::greedy(), stop: vec![] };
    let mut pieces = 0;
    let out = pollster::block_on(engine.generate(&[100, 101, 102], &opts, &mut |_| {
        pieces += 1;
        pieces < 3
    }))
    .expect("generate");
    assert_eq!(out.finish, aigc::generate::FinishReason::Abort);
    let full = pollster::block_on(engine.generate(&[100, 101, 102], &opts, &mut |_| true)).expect("generate");
    assert_eq!(full.tokens.len(), 20);
    assert_eq!(&full.tokens[..out.tokens.len()], &out.tokens[..], "same greedy prefix after an abort");
}
