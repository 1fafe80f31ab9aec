//! The same inputs give the same bits on lavapipe (native `aigc`) and SwiftShader (Chromium's
//! WebGPU), for the ops a picture goes through: our activation kernel in every mode, softmax,
//! group and layer norm (with and without the fused SiLU), our convolution (f32 and Q8_0), our
//! batched matmul (attention's q·kᵀ and p·v) in both layouts, our fused attention, our
//! matmul_q with f32 and Q8_0 weights (the linear layers) for one token and for a tile of
//! them, and the burn ops the diffusion models use (elementwise arithmetic, sqrt, matmul for
//! odd widths). This is what lets one seed give one PNG natively and in the
//! browser; WGSL's own exp/tanh failed it (see shaders/activation.wgsl).
//!
//! The test runs this binary twice, once per Vulkan driver (`VK_ICD_FILENAMES`; SwiftShader's
//! ICD comes with Debian's chromium, which `./build.sh setup` installs), each writing its
//! outputs to a folder, and compares the files bit for bit.
mod common;

use std::path::Path;
use std::process::Command;

use aigc::kernels::activation::{act, Act};
use aigc::kernels::norm::{group_norm, GroupShape};
use aigc::kernels::softmax::softmax_rows;
use aigc::kernels::bmm::{bmm, BLayout};
use aigc::kernels::flash_attn::flash_attn;
use aigc::kernels::matmul::{matmul, Linear};
use aigc::kernels::conv::{conv2d, ConvShape, ConvWeight};
use aigc::models::diffusion::nn::read_tensor;
use aigc::quant::GgmlType;
use burn::tensor::{Tensor, TensorData};
use common::{gpu, Rng};

const SWIFTSHADER: &str = "/usr/lib/chromium/vk_swiftshader_icd.json";

/// The child: write every op's output to `$AIGC_DUMP_DIR/<op>.bin`.
#[test]
#[ignore = "run by same_bits_on_lavapipe_and_swiftshader, once per driver"]
fn dump_outputs() {
    let Ok(dir) = std::env::var("AIGC_DUMP_DIR") else { return };
    let g = gpu();
    let mut rng = Rng(12345);
    let n = 1 << 16;
    // ±24 covers the activations' whole interesting range and exp's cut-offs.
    let a: Vec<f32> = rng.vec(n).iter().map(|x| x * 24.0).collect();
    let pos: Vec<f32> = rng.vec(n).iter().map(|x| x.abs() * 4.0 + 0.01).collect();
    let t = |v: &Vec<f32>| Tensor::<2>::from_data(TensorData::new(v.clone(), [256, 256]), &g.device);
    let put = |name: &str, x: Tensor<2>| {
        let v = pollster::block_on(read_tensor(&g, x)).expect("read");
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        std::fs::write(Path::new(&dir).join(format!("{name}.bin")), bytes).expect("write");
    };
    for k in Act::ALL {
        put(&format!("act_{k:?}"), act(&g, t(&a), k).expect("activation"));
    }
    put("softmax", aigc::gpu::Gpu::to_burn::<2>(softmax_rows(&g, &g.upload_f32(&a, &[256, 256]), 256, 256)));
    // GroupNorm (+ fused SiLU) as a resnet runs it: [1, 64, 32, 32] in 32 groups, offset mean;
    // and LayerNorm over 256 rows of 256.
    let xs: Vec<f32> = a.iter().map(|v| v * 0.25 + 3.0).collect();
    let (gamma, beta) = (g.upload_f32(&rng.vec(256), &[256]), g.upload_f32(&rng.vec(256), &[256]));
    let xg = g.upload_f32(&xs, &[n]);
    for (name, s, silu) in [
        ("group_norm", GroupShape { batch: 1, channels: 64, spatial: 1024, groups: 32, c0: 0 }, false),
        ("group_norm_silu", GroupShape { batch: 1, channels: 64, spatial: 1024, groups: 32, c0: 0 }, true),
        ("layer_norm", GroupShape { batch: 256, channels: 256, spatial: 1, groups: 1, c0: 0 }, false),
    ] {
        put(name, aigc::gpu::Gpu::to_burn::<1>(group_norm(&g, &xg, &gamma, &beta, s, 1e-6, silu)).reshape([256, 256]));
    }
    let s = ConvShape { batch: 1, ci: 16, h: 16, w: 16, co: 32, k: 3, stride: 1, pad_t: 1, pad_l: 1, pad_b: 1, pad_r: 1 };
    let x = rng.vec(16 * 256);
    let w = rng.vec(32 * 16 * 9);
    let bias = g.upload_f32(&rng.vec(32), &[32]);
    for ty in [GgmlType::F32, GgmlType::Q8_0] {
        let cw = ConvWeight::upload(&g, &w, 32, 16, 3, ty).expect("weight");
        let y = conv2d(&g, &g.upload_f32(&x, &[1, 16, 16, 16]), &cw, &bias, s).expect("conv");
        put(&format!("conv_{ty:?}"), aigc::gpu::Gpu::to_burn::<4>(y).reshape([32, 256]));
    }
    // Attention's products: [4, 64, 40] · [4, 77, 40]ᵀ, then [4, 64, 77] · [4, 77, 40].
    let (q, kv, p) = (rng.vec(4 * 64 * 40), rng.vec(4 * 77 * 40), rng.vec(4 * 64 * 77));
    let (qg, kvg, pg) = (g.upload_f32(&q, &[4, 64, 40]), g.upload_f32(&kv, &[4, 77, 40]), g.upload_f32(&p, &[4, 64, 77]));
    let scores = bmm(&g, &qg, &kvg, BLayout::Transposed, 4, 64, 77, 40, 0.158);
    put("bmm_transposed", aigc::gpu::Gpu::to_burn::<3>(scores).reshape([256, 77]));
    let out = bmm(&g, &pg, &kvg, BLayout::Plain, 4, 64, 40, 77, 1.0);
    put("bmm_plain", aigc::gpu::Gpu::to_burn::<3>(out).reshape([256, 40]));
    // The fused attention over the same q and keys (cross-attention's 77 keys, head size 40).
    let vg = g.upload_f32(&rng.vec(4 * 77 * 40), &[4, 77, 40]);
    let o = flash_attn(&g, &qg, &kvg, &vg, 4, 64, 77, 40, 0.158);
    put("flash_attn", aigc::gpu::Gpu::to_burn::<3>(o).reshape([256, 40]));
    // Linear layers: 96 outputs of 320 inputs, decode (1 token) and prefill (13 tokens) paths.
    let wl = rng.vec(96 * 320);
    let xl = rng.vec(13 * 320);
    for ty in [GgmlType::F32, GgmlType::Q8_0] {
        let bytes = match ty {
            GgmlType::Q8_0 => aigc::quant::quantize_q8_0(&wl),
            _ => wl.iter().flat_map(|f| f.to_le_bytes()).collect(),
        };
        let lin = Linear::upload(&g, 320, &[(ty, 96, &bytes)], None).expect("linear");
        for tok in [1usize, 13] {
            let y = matmul(&g, &g.upload_f32(&xl[..tok * 320], &[tok, 320]), &lin, tok);
            put(&format!("matmul_q_{ty:?}_t{tok}"), aigc::gpu::Gpu::to_burn::<2>(y));
        }
    }
    put("add", t(&a) + t(&pos));
    put("mul", t(&a) * t(&pos));
    put("div", t(&a) / t(&pos));
    put("sqrt", t(&pos).sqrt());
    put("matmul", t(&a).matmul(t(&pos)));
}

fn run_child(exe: &Path, dir: &Path, icd: Option<&str>) {
    std::fs::create_dir_all(dir).expect("dump dir");
    let mut cmd = Command::new(exe);
    cmd.args(["--ignored", "--exact", "dump_outputs", "--test-threads=1"]).env("AIGC_DUMP_DIR", dir);
    if let Some(icd) = icd {
        cmd.env("VK_ICD_FILENAMES", icd);
    }
    let out = cmd.output().expect("run the dump");
    assert!(out.status.success(), "dump on {icd:?} failed:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn same_bits_on_lavapipe_and_swiftshader() {
    assert!(Path::new(SWIFTSHADER).exists(), "{SWIFTSHADER} is missing: apt-get install chromium (./build.sh setup)");
    let exe = std::env::current_exe().expect("test binary");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/driver-bits");
    let _ = std::fs::remove_dir_all(&root);
    let (lvp, ss) = (root.join("lavapipe"), root.join("swiftshader"));
    run_child(&exe, &lvp, None);
    run_child(&exe, &ss, Some(SWIFTSHADER));
    let mut names: Vec<_> = std::fs::read_dir(&lvp).expect("dump").map(|e| e.expect("entry").file_name()).collect();
    names.sort();
    assert_eq!(names.len(), 25, "outputs written: {names:?}");
    let mut bad = Vec::new();
    for name in &names {
        let a = std::fs::read(lvp.join(name)).expect("lavapipe output");
        let b = std::fs::read(ss.join(name)).expect("SwiftShader output");
        assert_eq!(a.len(), b.len(), "{name:?}");
        let differ = a.chunks(4).zip(b.chunks(4)).filter(|(x, y)| x != y).count();
        if differ > 0 {
            bad.push(format!("{}: {differ} of {} values differ", name.to_string_lossy(), a.len() / 4));
        }
    }
    assert!(bad.is_empty(), "lavapipe and SwiftShader disagree:\n{}", bad.join("\n"));
}
