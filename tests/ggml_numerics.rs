//! llama.cpp-compatible numerics: `quantize_act.wgsl` and `matmul_q.wgsl`'s "q8" mode against
//! their CPU twin `kernels::ggml_ref` (ggml's quantizers and vec_dot functions as plain loops).
//! Activation rounding must be bit-identical; the matmuls differ only by f32 summation order.

mod common;

use aigc::kernels::actquant::{quantize_act, ActMode, Numerics};
use aigc::kernels::ggml_ref;
use aigc::kernels::matmul::{linear, linear_into, Linear};
use aigc::kernels::reference as cpu;
use aigc::quant::GgmlType;
use common::*;

/// Rows of 256 values with the cases that catch a wrong rounding rule: an all-zero block, f16
/// subnormal scales, large values, and exact ties (amax 127 makes the Q8 scale exactly 1).
fn awkward_rows(rng: &mut Rng, t: usize) -> Vec<f32> {
    let mut x = Vec::new();
    for r in 0..t {
        let mut row = rng.vec(256);
        for v in &mut row[32..64] {
            *v = 0.0;
        }
        for v in &mut row[64..96] {
            *v *= 3e-6; // d = amax/127 is an f16 subnormal
        }
        for v in &mut row[96..128] {
            *v *= 900.0;
        }
        row[128] = 127.0;
        for (i, v) in row[129..160].iter_mut().enumerate() {
            *v = i as f32 - 15.5; // x.5 ties at scale 1
        }
        // f16/bf16 ties: exactly halfway between two representable values.
        row[160] = 1.0 + 2f32.powi(-11);
        row[161] = 1.0 + 3.0 * 2f32.powi(-11);
        row[162] = 1.0 + 2f32.powi(-8);
        row[163] = 70000.0 * (r as f32 - 0.5).signum(); // f16 overflow
        x.extend(row);
    }
    x
}

#[test]
fn activation_rounding_is_bit_exact() {
    let g = gpu();
    let mut rng = Rng(0x51ed);
    for mode in [ActMode::Q8_1, ActMode::Q8K, ActMode::F16, ActMode::BF16] {
        for t in [1usize, 3] {
            let k = 512;
            let x: Vec<f32> = awkward_rows(&mut rng, 2 * t);
            let xg = g.upload_f32(&x, &[t, k]);
            let got = read(&g, &quantize_act(&g, &xg, t, k, mode));
            let want = ggml_ref::quantize_act(&x, k, mode);
            assert_eq!(got.len(), want.len(), "{mode:?}: output length");
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                // Equal values (a quant of −0.0 is the integer 0 either way).
                assert!(a == b || (a.is_nan() && b.is_nan()), "{mode:?} t={t}: element {i}: gpu {a:e} vs ggml {b:e}");
            }
        }
    }
}

#[test]
fn rounding_rules_are_ggml_s() {
    // Hand-checked values, so the twin itself is pinned: Q8 at scale 1 rounds ties to even
    // (AVX _mm256_round_ps), f16/bf16 round to nearest even.
    let mut x = vec![0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -3.5;
    x[3] = 0.5;
    let q = ggml_ref::quantize_q8_1(&x);
    assert_eq!(&q[0].qs[..4], &[127, 2, -4, 0]);
    assert_eq!(q[0].d, 1.0);
    assert_eq!(q[0].s, 125.0);
    let f = ggml_ref::quantize_act(&[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)], 2, ActMode::F16);
    assert_eq!(f, vec![1.0, 1.0 + 2f32.powi(-9)]);
}

#[test]
fn ggml_matmul_every_quant_type_matches_twin() {
    let g = gpu();
    let mut rng = Rng(0xface);
    for ty in ALL {
        let (n, k) = (37, k_for(ty));
        let bytes = random_blocks(&mut rng, ty, n, k);
        let lin = Linear::upload(&g, k, &[(ty, n, &bytes)], None).unwrap();
        let w = cpu::dequant_matrix(ty, n, k, &bytes).unwrap();
        for t in [1usize, 5, 13] {
            let x = rng.vec(t * k);
            let xg = g.upload_f32(&x, &[t, k]);
            let got = read(&g, &linear(&g, &xg, &lin, t, Numerics::Ggml));
            let want = ggml_ref::matmul(ty, &bytes, &x, t, k, n).unwrap();
            let e = nmse(&got, &want);
            assert!(e < 1e-11, "{} t={t}: NMSE {e:e} vs ggml's arithmetic", ty.name());
            // The rounding is real: except for F32 weights, ggml's result is not the exact one.
            let exact = cpu::matmul(&x, &w, None, t, k, n);
            let moved = nmse(&want, &exact);
            if ty == GgmlType::F32 {
                assert!(moved < 1e-12, "F32 weights: no rounding expected, NMSE {moved:e}");
            } else {
                assert!(moved > 1e-9, "{}: ggml numerics indistinguishable from f32 (NMSE {moved:e})", ty.name());
            }
        }
    }
}

#[test]
fn ggml_matmul_mixed_parts_bias_and_accumulate() {
    let g = gpu();
    let mut rng = Rng(31);
    let (k, t) = (256, 3);
    // Parts of three families: each needs its own activation rounding (Q8_1, Q8_K, f16).
    let parts = [(GgmlType::Q8_0, 9usize), (GgmlType::Q4_1, 4), (GgmlType::Q4_K, 5), (GgmlType::F16, 4)];
    let blobs: Vec<Vec<u8>> = parts.iter().map(|&(ty, n)| random_blocks(&mut rng, ty, n, k)).collect();
    let spec: Vec<(GgmlType, usize, &[u8])> = parts.iter().zip(&blobs).map(|(&(ty, n), b)| (ty, n, b.as_slice())).collect();
    let n_out = 22;
    let bias = rng.vec(n_out);
    let lin = Linear::upload(&g, k, &spec, Some(&bias)).unwrap();
    let x = rng.vec(t * k);
    let xg = g.upload_f32(&x, &[t, k]);
    let mut want = vec![0f32; t * n_out];
    let mut col = 0;
    for (&(ty, n), b) in parts.iter().zip(&blobs) {
        let y = ggml_ref::matmul(ty, b, &x, t, k, n).unwrap();
        for ti in 0..t {
            for j in 0..n {
                want[ti * n_out + col + j] = y[ti * n + j] + bias[col + j];
            }
        }
        col += n;
    }
    let got = read(&g, &linear(&g, &xg, &lin, t, Numerics::Ggml));
    assert!(nmse(&got, &want) < 1e-11, "mixed parts: NMSE {:e}", nmse(&got, &want));
    let base = rng.vec(t * n_out);
    let acc = g.upload_f32(&base, &[t, n_out]);
    linear_into(&g, &xg, &lin, t, &acc, true, Numerics::Ggml);
    let got = read(&g, &acc);
    let want2: Vec<f32> = want.iter().zip(&base).map(|(a, b)| a + b).collect();
    assert!(nmse(&got, &want2) < 1e-11, "accumulate: NMSE {:e}", nmse(&got, &want2));
}
