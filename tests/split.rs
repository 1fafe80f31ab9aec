//! Weights larger than the adapter's storage-binding limit are split over several buffers.
//! This test binary pretends the limit is 4 MiB (the `AIGC_MAX_BINDING` test knob, read when the
//! GPU is first initialised in this process), so SmolLM2's 30 MiB embedding and tied LM head
//! become 8 parts: the split paths of `get_rows` and `matmul` must give the same tokens.

use aigc::engine::{Engine, LoadOptions};
use aigc::generate::GenOptions;
use aigc::gpu::Gpu;
use aigc::sampling::SamplerConfig;
use aigc::source::FileSource;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn small_binding_limit_splits_weights_and_generates_identically() {
    std::env::set_var("AIGC_MAX_BINDING", (4u64 << 20).to_string());
    let gpu = pollster::block_on(Gpu::get()).expect("gpu");
    assert_eq!(gpu.max_binding, 4 << 20, "the knob must be read at initialisation");
    let path = format!("{ROOT}/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let src = FileSource::open(std::path::Path::new(&path)).expect("run ./build.sh setup to fetch the model");
    let mut engine = pollster::block_on(Engine::load(&src, &LoadOptions { ctx: 128, ..Default::default() }, &mut |_, _| {})).expect("load");

    assert_eq!(engine.model.embed_parts(), 8, "a 30.4 MiB table in 4 MiB buffers");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/tests/fixtures/models/smollm2.json")).expect("fixture")).expect("json");
    for p in fx["prompts"].as_array().expect("prompts").iter().take(1) {
        let prompt: Vec<u32> = p["prompt_ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect();
        let want: Vec<u32> = p["numpy_f64"]["greedy"]["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect();
        let opts = GenOptions { max_tokens: 16, sampler: SamplerConfig::greedy(), stop: vec![] };
        let out = pollster::block_on(engine.generate(&prompt, &opts, &mut |_| true)).expect("generate");
        assert_eq!(out.tokens[..], want[..16], "{}: split weights changed the greedy tokens", p["name"]);
    }
}
