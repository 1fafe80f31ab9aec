//! Tensors over the storage-binding limit: this test binary pretends the limit is 64 KiB (the
//! `AIGC_MAX_BINDING` test knob, read when the GPU is first initialised in this process), so
//! - decoding 16×16 latents of the tiny SD 1.x VAE (64 channels × 32² = 256 KiB per activation)
//!   runs in channel parts of 16, as SD 1.5's does at 512² under a 128 MiB limit;
//!   its 64 → 64 3×3 convolution weights (144 KiB in f32) are kept in parts of whole input
//!   channels, as SD's 2560 → 1280 ones (118 MiB) are under a smaller limit;
//! - the tiny CLIP's token table (1000 × 32 f32 = 125 KiB) sits in two row blocks, as SD 1.x's
//!   145 MiB table does under 128 MiB, and its attention runs in query chunks.
//! Both must still match candle (max |Δ| ≤ 1e-3).

use std::path::Path;

use aigc::gpu::Gpu;
use aigc::models::diffusion::config::{parse, VaeConfig};
use aigc::models::diffusion::nn::{Loader, WeightQuant};
use aigc::models::diffusion::vae::VaeDecoder;
use aigc::safetensors::SafetensorsFile;
use aigc::source::FileSource;
use burn::tensor::{Tensor, TensorData};
use candle_core::{DType, Device, Tensor as CTensor};
use candle_transformers::models::stable_diffusion::vae::{AutoEncoderKL, AutoEncoderKLConfig};

fn gpu() -> std::sync::Arc<Gpu> {
    std::env::set_var("AIGC_MAX_BINDING", (64u64 << 10).to_string());
    let gpu = pollster::block_on(Gpu::get()).expect("gpu");
    assert_eq!(gpu.max_binding, 64 << 10, "the knob must be read at initialisation");
    gpu
}

#[test]
fn clip_token_table_in_row_blocks_matches_candle() {
    use aigc::models::diffusion::clip::ClipText;
    use aigc::models::diffusion::config::ClipConfig;
    use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig, ClipTextTransformer};
    let gpu = gpu();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/sd-tiny-v1/text_encoder");
    let cfg: ClipConfig = parse(&std::fs::read_to_string(dir.join("config.json")).unwrap(), "clip").unwrap();
    let path = dir.join("model.safetensors");
    let file = pollster::block_on(SafetensorsFile::open(FileSource::open(&path).unwrap(), "clip")).unwrap();
    let ld = Loader::new(&file, &gpu, WeightQuant::F32);
    let ours = pollster::block_on(ClipText::load(&ld, cfg.clone())).expect("load");
    // ids from both row blocks (block size 512 rows here), padded with EOS as SD 1.x does
    let mut ids: Vec<u32> = vec![998, 5, 600, 17, 999, 300, 511, 512, 513, 42];
    ids.resize(77, 999);
    let got = pollster::block_on(gpu.read_f32(&Gpu::from_burn(ours.forward(&gpu, &[ids.clone()]).expect("forward")).unwrap())).unwrap();
    // SAFETY: the fixture file is not modified while the test runs.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.unwrap();
    let ccfg = ClipTextConfig {
        vocab_size: cfg.vocab_size,
        embed_dim: cfg.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: cfg.intermediate_size,
        max_position_embeddings: cfg.max_position_embeddings,
        pad_with: None,
        num_hidden_layers: cfg.num_hidden_layers,
        num_attention_heads: cfg.num_attention_heads,
        projection_dim: cfg.hidden_size,
    };
    let model = ClipTextTransformer::new(vb.pp("text_model"), &ccfg).unwrap();
    let x = CTensor::from_vec(ids, (1, 77), &Device::Cpu).unwrap();
    let want: Vec<f32> = model.forward_with_mask(&x, usize::MAX).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("CLIP with a split token table (64 KiB limit): max |Δ| = {d:.3e}");
    assert!(d <= 1e-3, "max |Δ| {d}");
}

#[test]
fn vae_decoder_in_channel_parts_matches_candle() {
    let gpu = gpu();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/sd-tiny-v1/vae");
    assert!(dir.exists(), "{} is missing: run ./build.sh fixtures", dir.display());
    let cfg: VaeConfig = parse(&std::fs::read_to_string(dir.join("config.json")).unwrap(), "vae").unwrap();
    let path = dir.join("diffusion_pytorch_model.safetensors");
    let file = pollster::block_on(SafetensorsFile::open(FileSource::open(&path).unwrap(), "vae")).unwrap();
    let ld = Loader::new(&file, &gpu, WeightQuant::F32);
    let ours = pollster::block_on(VaeDecoder::load(&ld, cfg.clone())).expect("load");
    let hw = 16usize;
    let mut s = 9u64;
    let lat: Vec<f32> = (0..4 * hw * hw)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(lat.clone(), [1, 4, hw, hw]), &gpu.device);
    let got = pollster::block_on(gpu.read_f32(&Gpu::from_burn(ours.forward(&gpu, x).expect("forward")).unwrap())).unwrap();

    // SAFETY: the fixture file is not modified while the test runs.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.unwrap();
    let ccfg = AutoEncoderKLConfig {
        block_out_channels: cfg.block_out_channels.clone(),
        layers_per_block: cfg.layers_per_block,
        latent_channels: cfg.latent_channels,
        norm_num_groups: cfg.norm_num_groups,
        use_quant_conv: true,
        use_post_quant_conv: true,
    };
    let model = AutoEncoderKL::new(vb, 3, 3, ccfg).unwrap();
    let cx = (CTensor::from_vec(lat, (1, 4, hw, hw), &Device::Cpu).unwrap() / cfg.scaling_factor).unwrap();
    let want: Vec<f32> = model.decode(&cx).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(got.len(), want.len());
    let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("VAE decode in channel parts (64 KiB limit): max |Δ| = {d:.3e} over {} values", got.len());
    assert!(d <= 1e-3, "max |Δ| {d}");
}
