use aigc::gpu::Gpu;
use aigc::kernels::*;
use aigc::quant::GgmlType;
use std::time::Instant;
fn main() {
    let g = pollster::block_on(Gpu::get()).unwrap();
    let reps = 50;
    let time = |name: &str, f: &dyn Fn() -> burn::backend::wgpu::CubeTensor| {
        let _ = pollster::block_on(g.read_f32(&f()));
        let t = Instant::now();
        let mut last = None;
        for _ in 0..reps { last = Some(f()); }
        pollster::block_on(g.read_f32(&last.unwrap())).unwrap();
        println!("{name}: {:.3} ms", t.elapsed().as_secs_f64() * 1000.0 / reps as f64);
    };
    let (d, f) = (576usize, 1536usize);
    let bytes = vec![0x11u8; f * d / 32 * 20];
    let lin = matmul::Linear::upload(&g, d, &[(GgmlType::Q4_1, f, &bytes)], None).unwrap();
    let x = g.upload_f32(&vec![0.1; d * 64], &[64, d]);
    time("matmul q4_1 1536x576 t=1", &|| matmul::matmul(&g, &x, &lin, 1));
    time("matmul q4_1 1536x576 t=64", &|| matmul::matmul(&g, &x, &lin, 64));
    let w = g.upload_f32(&vec![1.0; d], &[d]);
    time("rms_norm t=1", &|| norm::rms_norm(&g, &x, &w, d, 0, 1, 1e-5));
    let s = rope::HeadShape { n_head: 9, n_kv: 3, hd: 64, n_rot: 64, mode: rope::RopeMode::Adjacent };
    let ctx = 256;
    let kc = g.zeros_f32(&[3, ctx, 64]);
    let vc = g.zeros_f32(&[3, ctx, 64]);
    let q = g.zeros_f32(&[9, 64, 64]);
    time("attention t=1 pos 100", &|| attention::attention(&g, &q, &kc, &vc, s, 1, 100, ctx));
    time("attention t=64 pos 0", &|| attention::attention(&g, &q, &kc, &vc, s, 64, 0, ctx));
    let qkv = g.zeros_f32(&[64, 15 * 64]);
    let tab = g.upload_f32(&rope::rope_table(ctx, 64, 1e4, 1.0, None), &[ctx * 64]);
    time("rope t=1", &|| rope::rope_store(&g, &qkv, &tab, None, &kc, &vc, s, 1, 5, ctx));
    let gu = g.zeros_f32(&[64, 2 * f]);
    time("swiglu t=1", &|| ffn::swiglu(&g, &gu, f, 1));
}
