//! The diffusion kernels with f16 activations (`Precision::F16`: f16 in memory, f32 arithmetic)
//! against their CPU twins run on the same f16-rounded inputs, the twin's output rounded to f16.
//!
//! The arithmetic inside is the f32 kernel's, so the only new error is the final rounding:
//! every element must be within one f16 ulp of the rounded twin (WGSL leaves the f32→f16
//! rounding mode to the implementation; lavapipe rounds to nearest even and matches the
//! twin's bits exactly for the kernels whose f32 results are bit-identical to their twins:
//! group_norm and flash_attn, asserted on lavapipe only). NMSE against the unrounded twin
//! ≤ 1e-6 (shared/notes/fidelity.md, kernels that store f16). Also the model-level f16 paths
//! that route around the kernels: attention's bmm fallback and f32-weight linear layers.
//! Needs an adapter with `shader-f16` (lavapipe has it); without one the suite says so and
//! checks that the pipeline refuses f16 with a named error instead (tests/sd_pipeline.rs).

mod common;

use aigc::gpu::Gpu;
use aigc::kernels::activation::{activation, Act};
use aigc::kernels::conv::{conv2d, ConvShape, ConvWeight};
use aigc::kernels::flash_attn::flash_attn;
use aigc::kernels::matmul::{matmul, Linear};
use aigc::kernels::norm::{group_norm, GroupShape};
use aigc::kernels::reference as cpu;
use aigc::kernels::Precision;
use aigc::models::diffusion::nn::{attention, Dense};
use aigc::quant::GgmlType;
use burn::backend::wgpu::CubeTensor;
use burn::tensor::{DType, Tensor, TensorData};
use common::*;
use half::f16;

/// The GPU, if it can run f16 shaders.
fn gpu16() -> Option<std::sync::Arc<Gpu>> {
    let g = gpu();
    if !g.report.shader_f16 {
        eprintln!("adapter {} has no shader-f16: f16 kernels not run", g.report.name);
        return None;
    }
    Some(g)
}

/// `x` rounded to f16 (what an f16 tensor can hold).
fn r16(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| f16::from_f32(v).to_f32()).collect()
}

/// An f16 tensor of `shape` holding `x` (already representable).
fn up16<const D: usize>(g: &Gpu, x: &[f32], shape: [usize; D]) -> CubeTensor {
    let t = Tensor::<D>::from_data(TensorData::new(x.to_vec(), shape), &g.device).cast(DType::F16);
    let t = Gpu::from_burn(t).expect("f16 tensor");
    assert_eq!(Precision::of(&t), Precision::F16);
    t
}

/// f16 values in order as integers (−0 and +0 both 0), so neighbours differ by 1.
fn ord16(v: f32) -> i32 {
    let b = f16::from_f32(v).to_bits();
    let m = (b & 0x7fff) as i32;
    if b & 0x8000 != 0 { -m } else { m }
}

/// Whether this is lavapipe, which rounds f32→f16 to nearest even as the twin does.
fn lavapipe(g: &Gpu) -> bool {
    g.report.name.contains("llvmpipe")
}

/// `got` (an f16 kernel's output, widened) against the f32 twin `want`: within one f16 ulp
/// of the rounded twin everywhere, NMSE ≤ 1e-6. Returns how many elements match the rounded
/// twin's bits.
fn check(what: &str, out: &CubeTensor, g: &Gpu, want: &[f32]) -> usize {
    assert_eq!(Precision::of(out), Precision::F16, "{what}: output not stored as f16");
    let got = read(g, out);
    assert_eq!(got.len(), want.len(), "{what}: length");
    let rounded = r16(want);
    for (i, (&a, &w)) in got.iter().zip(&rounded).enumerate() {
        assert!(a.is_finite() == w.is_finite(), "{what}: element {i}: gpu {a} vs twin {w}");
        if w.is_finite() {
            assert!((ord16(a) - ord16(w)).abs() <= 1, "{what}: element {i}: gpu {a} vs rounded twin {w} (twin {})", want[i]);
        }
    }
    let e = nmse(&got, want);
    assert!(e <= 1e-6, "{what}: NMSE {e:e} against the f32 twin");
    let exact = got.iter().zip(&rounded).filter(|(a, w)| a.to_bits() == w.to_bits()).count();
    println!("{what}: {exact}/{} elements equal to the rounded twin, NMSE {e:.2e}", got.len());
    exact
}

#[test]
fn activations_f16() {
    let Some(g) = gpu16() else { return };
    let mut rng = Rng(61);
    let x = r16(&rng.vec(20_000).iter().map(|v| v * 8.0).collect::<Vec<_>>());
    for a in Act::ALL {
        // e^x overflows f16 past 11: keep exp where the result is finite in f16.
        let xs: Vec<f32> = if a == Act::Exp { x.iter().map(|v| v.clamp(-15.0, 10.0)).collect() } else { x.clone() };
        let y = activation(&g, &up16(&g, &xs, [xs.len()]), a);
        // The f32 kernel is within 1e-7 NMSE of this twin, not bit-identical to it, so a
        // handful of elements near an f16 rounding boundary may round the other way.
        check(&format!("{a:?}"), &y, &g, &cpu::activation(&xs, a));
    }
}

#[test]
fn group_norm_and_layer_norm_f16() {
    let Some(g) = gpu16() else { return };
    let mut rng = Rng(67);
    // GroupNorm over 2 × 64 channels of 17×9 pixels in 8 groups (a UNet resnet's shape, small);
    // LayerNorm as one group per row of 320.
    let cases = [
        GroupShape { batch: 2, channels: 64, spatial: 17 * 9, groups: 8, c0: 0 },
        GroupShape { batch: 77, channels: 320, spatial: 1, groups: 1, c0: 0 },
    ];
    for s in cases {
        let n = s.batch * s.channels * s.spatial;
        let x = r16(&rng.vec(n).iter().map(|v| v * 3.0 + 0.5).collect::<Vec<_>>());
        let (gamma, beta) = (rng.vec(s.channels), rng.vec(s.channels));
        let (gg, gb) = (g.upload_f32(&gamma, &[s.channels]), g.upload_f32(&beta, &[s.channels]));
        let xg = up16(&g, &x, [s.batch, s.channels, s.spatial]);
        for silu in [false, true] {
            let y = group_norm(&g, &xg, &gg, &gb, s, 1e-5, silu);
            let want = cpu::group_norm(&x, &gamma, &beta, s, 1e-5, silu);
            let exact = check(&format!("group_norm {s:?} silu={silu}"), &y, &g, &want);
            if lavapipe(&g) {
                assert_eq!(exact, n, "{s:?}: not bit-identical to the rounded twin");
            }
        }
    }
}

#[test]
fn flash_attn_f16() {
    let Some(g) = gpu16() else { return };
    let mut rng = Rng(71);
    // Cross-attention's 77 keys at SD 1.5's head size 40; self-attention at 16.
    for (batch, tq, tk, d) in [(2usize, 70usize, 77usize, 40usize), (4, 64, 256, 16)] {
        let q = r16(&rng.vec(batch * tq * d).iter().map(|v| v * 2.0).collect::<Vec<_>>());
        let (k, v) = (r16(&rng.vec(batch * tk * d)), r16(&rng.vec(batch * tk * d)));
        let alpha = 1.0 / (d as f32).sqrt();
        let (qg, kg, vg) = (up16(&g, &q, [batch, tq, d]), up16(&g, &k, [batch, tk, d]), up16(&g, &v, [batch, tk, d]));
        let y = flash_attn(&g, &qg, &kg, &vg, batch, tq, tk, d, alpha);
        let want = cpu::flash_attn(&q, &k, &v, batch, tq, tk, d, alpha);
        let exact = check(&format!("flash_attn {batch}x{tq}x{tk}x{d}"), &y, &g, &want);
        if lavapipe(&g) {
            assert_eq!(exact, want.len(), "flash_attn {batch}x{tq}x{tk}x{d}: not bit-identical to the rounded twin");
        }
    }
}

#[test]
fn conv2d_f16() {
    let Some(g) = gpu16() else { return };
    let mut rng = Rng(73);
    let shape = |batch, ci, h, w, co, k, stride, pad_t, pad_b| ConvShape {
        batch, ci, h, w, co, k, stride, pad_t, pad_l: pad_t, pad_b, pad_r: pad_b,
    };
    for s in [shape(2, 5, 7, 9, 13, 3, 1, 1, 1), shape(1, 32, 16, 16, 40, 3, 2, 1, 1), shape(2, 17, 5, 3, 70, 1, 1, 0, 0)] {
        for ty in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0] {
            let x = r16(&rng.vec(s.batch * s.ci * s.h * s.w));
            let w: Vec<f32> = rng.vec(s.co * s.ci * s.k * s.k).iter().map(|v| v * 0.2).collect();
            let b = rng.vec(s.co);
            let want = cpu::conv2d(&x, &ConvWeight::dequantized(&w, s.co, s.ci, s.k, ty), &b, s);
            let gw = ConvWeight::upload(&g, &w, s.co, s.ci, s.k, ty).expect("weight");
            let y = conv2d(&g, &up16(&g, &x, [s.batch, s.ci, s.h, s.w]), &gw, &g.upload_f32(&b, &[s.co]), s).expect("conv2d");
            check(&format!("conv2d {} {s:?}", ty.name()), &y, &g, &want);
        }
    }
}

#[test]
fn matmul_f16() {
    let Some(g) = gpu16() else { return };
    let mut rng = Rng(79);
    let (n, k) = (70, 96);
    for ty in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0] {
        let bytes = random_blocks(&mut rng, ty, n, k);
        let w = cpu::dequant_matrix(ty, n, k, &bytes).expect("dequant");
        let bias = rng.vec(n);
        let lin = Linear::upload(&g, k, &[(ty, n, &bytes)], Some(&bias)).expect("upload");
        for t in [1usize, 13, 77] {
            let x = r16(&rng.vec(t * k));
            let y = matmul(&g, &up16(&g, &x, [t, k]), &lin, t);
            check(&format!("matmul {} t={t}", ty.name()), &y, &g, &cpu::matmul(&x, &w, Some(&bias), t, k, n));
        }
    }
}

/// `t` read back as f32 values (widened when it is f16).
fn values<const D: usize>(g: &Gpu, t: Tensor<D>) -> Vec<f32> {
    read(g, &Gpu::from_burn(t).expect("tensor"))
}

#[test]
fn attention_fallback_and_f32_linear_f16() {
    let Some(g) = gpu16() else { return };
    let mut rng = Rng(83);
    // Head size 6 is not flash_attn's (multiples of 4): bmm + softmax, which are f32 only, so
    // f16 inputs are widened and the result narrowed. Compare with the f32 call on the same values.
    let (b, h, tq, tk, d) = (2, 3, 19, 77, 6);
    let q = r16(&rng.vec(b * h * tq * d));
    let (k, v) = (r16(&rng.vec(b * h * tk * d)), r16(&rng.vec(b * h * tk * d)));
    let t32 = |x: &[f32], t: usize| Tensor::<4>::from_data(TensorData::new(x.to_vec(), [b, h, t, d]), &g.device);
    let t16 = |x: &[f32], t: usize| t32(x, t).cast(DType::F16);
    let want = values(&g, attention(&g, t32(&q, tq), t32(&k, tk), t32(&v, tk), None, 1 << 30).expect("f32 attention"));
    let got = attention(&g, t16(&q, tq), t16(&k, tk), t16(&v, tk), None, 1 << 30).expect("f16 attention");
    assert_eq!(got.dtype(), DType::F16, "attention fallback did not narrow back to f16");
    let got = values(&g, got);
    assert!(nmse(&got, &want) <= 1e-6, "attention fallback: NMSE {:e}", nmse(&got, &want));
    for (a, w) in got.iter().zip(&want) {
        assert!((ord16(*a) - ord16(*w)).abs() <= 1, "attention fallback: {a} vs f32 {w}");
    }
    // A linear layer of width 24 (not a multiple of 32) keeps f32 weights in burn's matmul.
    let (n_in, n_out, t) = (24, 10, 5);
    let (w, bias, x) = (rng.vec(n_in * n_out), rng.vec(n_out), r16(&rng.vec(t * n_in)));
    let dense = Dense::F32 {
        wt: Tensor::<2>::from_data(TensorData::new(w.clone(), [n_in, n_out]), &g.device),
        b: Some(Tensor::<1>::from_data(TensorData::new(bias.clone(), [n_out]), &g.device)),
    };
    let x16 = Tensor::<3>::from_data(TensorData::new(x.clone(), [1, t, n_in]), &g.device).cast(DType::F16);
    let y = dense.forward(&g, x16).expect("f16 linear");
    assert_eq!(y.dtype(), DType::F16, "f32 linear did not narrow back to f16");
    let want: Vec<f32> = (0..t)
        .flat_map(|i| (0..n_out).map(move |o| (i, o)))
        .map(|(i, o)| (0..n_in).map(|c| x[i * n_in + c] * w[c * n_out + o]).sum::<f32>() + bias[o])
        .collect();
    let got = values(&g, y);
    assert!(nmse(&got, &want) <= 1e-6, "f32 linear on f16: NMSE {:e}", nmse(&got, &want));
}
