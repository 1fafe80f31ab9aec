//! Helpers shared by the GPU test suites: a tiny seeded RNG, the GPU, readback, NMSE (as
//! llama.cpp's test-backend-ops), and random quant blocks with sane scales.
#![allow(dead_code)]

use aigc::gpu::Gpu;
use aigc::quant::GgmlType;

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
}

pub fn gpu() -> std::sync::Arc<Gpu> {
    pollster::block_on(Gpu::get()).expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)")
}

/// `target/fixtures/NAME`, written by `./build.sh fixtures`.
pub fn fixture(name: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures").join(name);
    assert!(p.exists(), "{} is missing: run ./build.sh fixtures", p.display());
    p
}

pub fn read(g: &Gpu, t: &burn::backend::wgpu::CubeTensor) -> Vec<f32> {
    pollster::block_on(g.read_f32(t)).expect("readback")
}

/// NMSE = Σ(a−b)² / Σb², as llama.cpp's test-backend-ops.
pub fn nmse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    num / den.max(1e-30)
}

pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], max_nmse: f64) {
    let e = nmse(gpu, cpu);
    assert!(e <= max_nmse, "{what}: NMSE {e:e} > {max_nmse:e}");
    for (i, (&a, &b)) in gpu.iter().zip(cpu).enumerate() {
        assert!(a.is_finite(), "{what}: non-finite at {i}: {a}");
        if max_nmse <= 1e-7 {
            assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{what}: element {i}: gpu {a} vs cpu {b}");
        }
    }
}

/// Random blocks of type `ty` with finite, modest f16 scales at the right byte offsets.
pub fn random_blocks(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    if ty == GgmlType::F32 {
        return rng.vec(rows * cols).iter().flat_map(|x| x.to_le_bytes()).collect();
    }
    if ty == GgmlType::F16 {
        return rng.vec(rows * cols).iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    }
    if ty == GgmlType::BF16 {
        return rng.vec(rows * cols).iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
    }
    let n_blocks = rows * cols / ty.block_size();
    let bs = ty.type_size();
    let mut out = Vec::with_capacity(n_blocks * bs);
    for _ in 0..n_blocks {
        let mut b: Vec<u8> = (0..bs).map(|_| rng.next() as u8).collect();
        let mut put = |at: usize, v: f32| b[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        let scale = 0.02 + 0.05 * rng.f().abs();
        let minv = 0.1 * rng.f();
        match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => put(0, scale),
            GgmlType::Q4_1 | GgmlType::Q5_1 => {
                put(0, scale);
                put(2, minv)
            }
            GgmlType::Q4_K | GgmlType::Q5_K => {
                put(0, scale * 0.1);
                put(2, minv.abs() * 0.1)
            }
            GgmlType::Q6_K => put(208, scale * 0.1),
            _ => {}
        }
        out.extend(b);
    }
    out
}

pub const ALL: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

pub fn k_for(ty: GgmlType) -> usize {
    if ty.block_size() == 256 { 512 } else { 160 } // 160 = 5 chunks: not a multiple of the 16 lanes
}
