//! Single-file checkpoints (original CompVis / Stability names) and stable-diffusion.cpp-style
//! GGUF files, written from the random-weight diffusers folders by
//! `tests/fixtures/make_sd_single_file.py` (`./build.sh fixtures`): the same weights under the
//! other layout must give the *identical* picture, since nothing but names, shapes and (for the
//! GGUF) who quantized the weights differs. The script's name tables are diffusers' own
//! diffusers → original direction; ours in `checkpoint.rs` go the other way.

mod common;

use aigc::models::diffusion::checkpoint::{infer_unet, infer_vae, tables, Family};
use aigc::models::diffusion::config::{UnetConfig, VaeConfig};
use aigc::models::diffusion::nn::WeightQuant;
use aigc::models::diffusion::pipeline::{Generated, ImageRequest, SdPipeline};
use aigc::models::diffusion::scheduler::SchedulerKind;
use aigc::models::diffusion::store::Renamed;
use aigc::safetensors::SafetensorsFile;
use aigc::source::{DirFolder, FileSource};
use aigc::Error;
use common::{fixture, gpu};

fn folder(name: &str, quant: WeightQuant) -> SdPipeline {
    pollster::block_on(SdPipeline::load(&DirFolder(fixture(name)), gpu(), quant)).expect("load folder")
}

fn single(file: &str, aux: &str, quant: Option<WeightQuant>) -> aigc::Result<SdPipeline> {
    let src = FileSource::open(&fixture(file)).expect("open");
    pollster::block_on(SdPipeline::load_single(src, file, &DirFolder(fixture(aux)), gpu(), quant))
}

fn run(p: &SdPipeline) -> Generated {
    let mut r = ImageRequest::new("a red bicycle in the snow");
    r.negative = "blurry".into();
    (r.width, r.height, r.steps, r.seed) = (32, 32, 2, 11);
    r.scheduler = SchedulerKind::EulerAncestral;
    pollster::block_on(p.generate(&r, &mut |_| true)).expect("generate")
}

fn same_picture(a: &SdPipeline, b: &SdPipeline, what: &str) {
    let (x, y) = (run(a), run(b));
    // the folder's taesd/ (previews) is not part of the checkpoint
    let bytes = |p: &SdPipeline| p.gpu_bytes - p.taesd.as_ref().map_or(0, |t| t.gpu_bytes);
    assert_eq!(bytes(a), bytes(b), "{what}: GPU weight bytes");
    assert_eq!(x.latents, y.latents, "{what}: final latents");
    assert_eq!(x.images[0], y.images[0], "{what}: picture");
    println!("{what}: identical to the diffusers folder ({:.2} MiB on the GPU)", bytes(a) as f64 / 1048576.0);
}

fn folder_configs(name: &str) -> (UnetConfig, VaeConfig) {
    let read = |rel: &str| std::fs::read_to_string(fixture(name).join(rel)).expect("config");
    let unet = serde_json::from_str(&read("unet/config.json")).expect("unet config");
    let vae = serde_json::from_str(&read("vae/config.json")).expect("vae config");
    (unet, vae)
}

#[test]
fn sd1_single_file_infers_its_configs() {
    let src = FileSource::open(&fixture("sd-tiny-v1-single/sd-tiny-v1.safetensors")).expect("open");
    let st = pollster::block_on(SafetensorsFile::open(src, "sd-tiny-v1.safetensors")).expect("header");
    let t = tables(&st).expect("tables");
    assert_eq!(t.family, Family::V1);
    let (want_unet, want_vae) = folder_configs("sd-tiny-v1");
    let unet = infer_unet(&Renamed::new(&st, t.unet, "UNet"), t.family).expect("unet config");
    let vae = infer_vae(&Renamed::new(&st, t.vae, "VAE")).expect("vae config");
    // The fields that shape the network (Debug covers every one, defaults included).
    assert_eq!(format!("{:?}", unet.block_out_channels), format!("{:?}", want_unet.block_out_channels));
    assert_eq!(unet.down_block_types, want_unet.down_block_types);
    assert_eq!(unet.up_block_types, want_unet.up_block_types);
    assert_eq!(unet.layers_per_block, want_unet.layers_per_block);
    assert_eq!(unet.cross_attention_dim, want_unet.cross_attention_dim);
    assert_eq!(unet.use_linear_projection, want_unet.use_linear_projection);
    for i in 0..unet.block_out_channels.len() {
        assert_eq!(unet.heads(i).expect("heads"), want_unet.heads(i).expect("heads"), "heads of block {i}");
    }
    assert_eq!(format!("{vae:?}"), format!("{want_vae:?}"));
}

#[test]
fn sd1_safetensors_single_file_gives_the_folder_picture() {
    // configs inferred (UNet, VAE); the tokenizer and the tiny CLIP's config come from beside it
    let a = single("sd-tiny-v1-single/sd-tiny-v1.safetensors", "sd-tiny-v1-single", Some(WeightQuant::F32)).expect("load");
    same_picture(&a, &folder("sd-tiny-v1", WeightQuant::F32), "SD 1.x single-file safetensors, f32");
}

#[test]
fn sd2_openclip_single_file_gives_the_folder_picture() {
    // fused in_proj split into q/k/v, the extra last OpenCLIP layer dropped, "!" padding
    let a = single("sd-tiny-v2.safetensors", "sd-tiny-v2", Some(WeightQuant::F32)).expect("load");
    let b = folder("sd-tiny-v2", WeightQuant::F32);
    assert_eq!(a.tokenizer.pad_id(), b.tokenizer.pad_id());
    same_picture(&a, &b, "SD 2.x single-file safetensors (OpenCLIP names), f32");
}

#[test]
fn gguf_q8_0_weights_are_used_as_stored() {
    // gguf-py's Q8_0 blocks, uploaded as they are, equal our own load-time quantization
    let a = single("sd-tiny-v1-single/sd-tiny-v1.q8_0.gguf", "sd-tiny-v1-single", None).expect("load");
    assert_eq!(a.quant, WeightQuant::Q8_0, "a Q8_0 GGUF is kept as Q8_0");
    same_picture(&a, &folder("sd-tiny-v1", WeightQuant::Q8_0), "stable-diffusion.cpp-style GGUF, Q8_0 as stored");
    // asked for f32, the same file is dequantized: a different (and larger) model on the GPU
    let f = single("sd-tiny-v1-single/sd-tiny-v1.q8_0.gguf", "sd-tiny-v1-single", Some(WeightQuant::F32)).expect("load f32");
    assert!(f.gpu_bytes > a.gpu_bytes);
}

#[test]
fn single_file_errors_are_named() {
    // a diffusers component file is not a single-file checkpoint
    let e = single("sd-tiny-v1/unet/diffusion_pytorch_model.safetensors", "sd-tiny-v1", Some(WeightQuant::F32)).err();
    assert!(matches!(&e, Some(Error::WeightsFormat(m)) if m.contains("model.diffusion_model")), "{e:?}");
    // no tokenizer beside it
    let e = single("sd-tiny-v2.safetensors", "sd-tiny-v1-single/text_encoder", Some(WeightQuant::F32)).err();
    assert!(matches!(&e, Some(Error::WeightsFormat(m)) if m.contains("tokenizer")), "{e:?}");
    // SD 2.x heads cannot be inferred for 32-channel blocks: a config is asked for
    let e = single("sd-tiny-v2.safetensors", "sd-tiny-v1-single", Some(WeightQuant::F32)).err();
    assert!(matches!(&e, Some(Error::ModelConfig(m)) if m.contains("--config")), "{e:?}");
}
