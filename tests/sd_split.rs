//! The VAE decoder over channel parts: this test binary pretends the storage-binding limit is
//! 256 KiB (the `AIGC_MAX_BINDING` test knob, read when the GPU is first initialised in this
//! process), so decoding 32×32 latents of the tiny SD 1.x VAE (64 channels × 64² = 1 MiB per
//! activation) runs in parts of 16 channels, as SD 1.5's does at 512² under a 128 MiB limit.
//! The result must still match candle's decoder (max |Δ| ≤ 1e-3).

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

#[test]
fn vae_decoder_in_channel_parts_matches_candle() {
    std::env::set_var("AIGC_MAX_BINDING", (256u64 << 10).to_string());
    let gpu = pollster::block_on(Gpu::get()).expect("gpu");
    assert_eq!(gpu.max_binding, 256 << 10, "the knob must be read at initialisation");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/sd-tiny-v1/vae");
    assert!(dir.exists(), "{} is missing: run ./build.sh fixtures", dir.display());
    let cfg: VaeConfig = parse(&std::fs::read_to_string(dir.join("config.json")).unwrap(), "vae").unwrap();
    let path = dir.join("diffusion_pytorch_model.safetensors");
    let file = pollster::block_on(SafetensorsFile::open(FileSource::open(&path).unwrap(), "vae")).unwrap();
    let ld = Loader::new(&file, &gpu, WeightQuant::F32);
    let ours = pollster::block_on(VaeDecoder::load(&ld, cfg.clone())).expect("load");
    let hw = 32usize;
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
    println!("VAE decode in channel parts (256 KiB limit): max |Δ| = {d:.3e} over {} values", got.len());
    assert!(d <= 1e-3, "max |Δ| {d}");
}
