//! TAESD previews: the decoder against an independent float64 numpy forward pass of the same
//! random weights (`tests/fixtures/make_taesd_reference.py`), and per-step previews in the
//! pipeline (one per candidate per step, of the denoised estimate: at the last Euler step it is
//! the final latent, so its TAESD picture must equal the last preview).

use std::path::{Path, PathBuf};

use aigc::gpu::Gpu;
use aigc::models::diffusion::imageio::{psnr, read_npy_f32, Rgb8};
use aigc::models::diffusion::nn::{read_tensor, WeightQuant};
use aigc::models::diffusion::pipeline::{ImageRequest, SdPipeline};
use aigc::models::diffusion::scheduler::SchedulerKind;
use aigc::source::DirFolder;
use burn::tensor::{Tensor, TensorData};

fn fixture(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures").join(name);
    assert!(p.exists(), "{} is missing: run ./build.sh fixtures", p.display());
    p
}

fn npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/taesd").join(name);
    let n = read_npy_f32(&std::fs::read(&p).expect("fixture")).expect("npy");
    (n.shape, n.data)
}

fn load() -> (std::sync::Arc<Gpu>, SdPipeline) {
    let gpu = pollster::block_on(Gpu::get()).expect("gpu");
    let p = pollster::block_on(SdPipeline::load(&DirFolder(fixture("sd-tiny-v1")), gpu.clone(), WeightQuant::F32)).expect("load");
    (gpu, p)
}

#[test]
fn taesd_matches_numpy_float64() {
    let (gpu, p) = load();
    let taesd = p.taesd.as_ref().expect("sd-tiny-v1/taesd/ is loaded with the folder");
    let (shape, latents) = npy("latents.npy");
    let (_, want) = npy("image.npy");
    let x = Tensor::<4>::from_data(TensorData::new(latents, [1, shape[0], shape[1], shape[2]]), &gpu.device);
    let got = pollster::block_on(read_tensor(&gpu, taesd.forward(&gpu, x).expect("forward"))).expect("read");
    assert_eq!(got.len(), want.len(), "8× the latent size, 3 channels");
    let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let inside = want.iter().filter(|v| **v > 0.0 && **v < 1.0).count() as f64 / want.len() as f64;
    println!("TAESD vs numpy float64: max |Δ| {max:.2e} ({:.0}% of the reference strictly inside (0, 1))", inside * 100.0);
    assert!(inside > 0.5, "the reference picture is mostly clamped: a weak test");
    assert!(max <= 1e-4, "TAESD differs from the float64 reference by {max}");
}

#[test]
fn previews_every_step_and_the_last_is_the_result() {
    let (gpu, p) = load();
    let mut r = ImageRequest::new("a lighthouse at dusk");
    (r.width, r.height, r.steps, r.count, r.seed, r.scheduler) = (32, 32, 3, 2, 5, SchedulerKind::Euler);
    r.previews = true;
    let mut shots: Vec<Vec<Rgb8>> = Vec::new();
    let out = pollster::block_on(p.generate(&r, &mut |s| {
        shots.push(s.previews);
        true
    }))
    .expect("generate");
    assert_eq!(shots.len(), 3, "one callback per step");
    let [c, h, w] = p.latent_shape(32, 32).expect("shape");
    for (i, s) in shots.iter().enumerate() {
        assert_eq!(s.len(), 2, "step {i}: one preview per candidate");
        assert!(s.iter().all(|img| (img.width, img.height) == (8 * w, 8 * h)), "step {i}: 8× the latent size");
    }
    assert_ne!(shots[0][0], shots[2][0], "the estimate changes between steps");
    assert_ne!(shots[2][0], shots[2][1], "candidates differ");
    // Euler's last step lands on its own x₀ estimate: TAESD of the final latents is the last preview.
    let taesd = p.taesd.as_ref().expect("taesd");
    for k in 0..2 {
        let lat = out.latents[k * c * h * w..(k + 1) * c * h * w].to_vec();
        let x = Tensor::<4>::from_data(TensorData::new(lat, [1, c, h, w]), &gpu.device);
        let img = pollster::block_on(read_tensor(&gpu, taesd.forward(&gpu, x).expect("forward"))).expect("read");
        let rgb: Vec<u8> = (0..8 * h * 8 * w).flat_map(|i| (0..3).map(move |ch| (ch, i))).map(|(ch, i)| (img[ch * 64 * h * w + i].clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        let db = psnr(&Rgb8 { width: 8 * w, height: 8 * h, data: rgb }, &shots[2][k]);
        println!("candidate {k}: last preview vs TAESD(final latents): PSNR {db:.1} dB");
        assert!(db > 45.0, "candidate {k}: the last preview is not the result's picture ({db} dB)");
    }
    // Without the flag, no previews are made.
    r.previews = false;
    let mut any = false;
    pollster::block_on(p.generate(&r, &mut |s| {
        any |= !s.previews.is_empty();
        true
    }))
    .expect("generate");
    assert!(!any, "previews made without being asked for");
}
