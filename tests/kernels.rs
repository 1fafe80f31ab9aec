//! Every WGSL kernel against its CPU twin in `kernels::reference`, on lavapipe (or whatever
//! adapter wgpu finds), with the tolerances of shared/notes/fidelity.md and shapes that are not
//! tile multiples. Outputs written in place are surrounded by guard values that must survive.

use aigc::kernels::activation::{activation, Act};
use aigc::kernels::attention::attention;
use aigc::kernels::bmm::{bmm, BLayout};
use aigc::kernels::ffn::swiglu;
use aigc::kernels::flash_attn::flash_attn;
use aigc::kernels::matmul::{get_rows, matmul, matmul_into, Linear};
use aigc::kernels::norm::{group_norm, rms_norm, GroupShape};
use aigc::kernels::softmax::softmax_rows;
use aigc::kernels::reference as cpu;
use aigc::kernels::rope::{rope_store, rope_table, HeadShape, RopeMode};
use aigc::quant::GgmlType;

mod common;

use common::*;

const GUARD: f32 = 12345.0;

#[test]
fn matmul_every_quant_type_matches_reference() {
    let g = gpu();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for ty in ALL {
        let (n, k) = (37, k_for(ty));
        let bytes = random_blocks(&mut rng, ty, n, k);
        let w = cpu::dequant_matrix(ty, n, k, &bytes).unwrap();
        let lin = Linear::upload(&g, k, &[(ty, n, &bytes)], None).unwrap();
        for t in [1usize, 5, 13] {
            let x = rng.vec(t * k);
            let xg = g.upload_f32(&x, &[t, k]);
            let y = read(&g, &matmul(&g, &xg, &lin, t));
            let want = cpu::matmul(&x, &w, None, t, k, n);
            assert_close(&format!("matmul {} t={t}", ty.name()), &y, &want, 5e-4);
            assert!(nmse(&y, &want) < 1e-9, "{}: t={t} NMSE {:e} (same dequant, only summation order differs)", ty.name(), nmse(&y, &want));
        }
    }
}

#[test]
fn matmul_parts_bias_and_accumulate() {
    let g = gpu();
    let mut rng = Rng(7);
    let (k, t) = (96, 3);
    // Q|K|V-like: two Q8_0 parts (merged into one buffer) then a Q4_1 part (its own dispatch).
    let parts = [(GgmlType::Q8_0, 9usize), (GgmlType::Q8_0, 5), (GgmlType::Q4_1, 6)];
    let blobs: Vec<Vec<u8>> = parts.iter().map(|&(ty, n)| random_blocks(&mut rng, ty, n, k)).collect();
    let spec: Vec<(GgmlType, usize, &[u8])> = parts.iter().zip(&blobs).map(|(&(ty, n), b)| (ty, n, b.as_slice())).collect();
    let bias = rng.vec(20);
    let lin = Linear::upload(&g, k, &spec, Some(&bias)).unwrap();
    assert_eq!(lin.parts.len(), 2, "same-type neighbours share one buffer");
    let mut w = Vec::new();
    for (&(ty, n), b) in parts.iter().zip(&blobs) {
        w.extend(cpu::dequant_matrix(ty, n, k, b).unwrap());
    }
    let x = rng.vec(t * k);
    let xg = g.upload_f32(&x, &[t, k]);
    let y = read(&g, &matmul(&g, &xg, &lin, t));
    let want = cpu::matmul(&x, &w, Some(&bias), t, k, 20);
    assert_close("multi-part matmul with bias", &y, &want, 1e-9);

    // Accumulate into an existing buffer (the residual connection).
    let base = rng.vec(t * 20);
    let acc = g.upload_f32(&base, &[t, 20]);
    matmul_into(&g, &xg, &lin, t, &acc, true);
    let got = read(&g, &acc);
    let want2: Vec<f32> = want.iter().zip(&base).map(|(a, b)| a + b).collect();
    assert_close("accumulating matmul", &got, &want2, 1e-9);
}

#[test]
fn get_rows_every_quant_type() {
    let g = gpu();
    let mut rng = Rng(99);
    for ty in ALL {
        let (n, k) = (11, k_for(ty));
        let bytes = random_blocks(&mut rng, ty, n, k);
        let w = cpu::dequant_matrix(ty, n, k, &bytes).unwrap();
        let qw = Linear::upload(&g, k, &[(ty, n, &bytes)], None).unwrap();
        let ids = [3u32, 0, 10, 3, 7];
        let idg = g.upload_u32(&ids);
        let y = read(&g, &get_rows(&g, &qw, &idg, ids.len()));
        let want = cpu::get_rows(&w, k, &ids);
        let max = y.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1e-6 + b.abs())).fold(0f32, f32::max);
        // Dequantization is integer math times a scale; the GPU may fuse q·d + m into one FMA,
        // so allow one rounding step rather than demanding the CPU's bits.
        assert!(max <= 1e-6, "get_rows {}: max relative diff {max:e}", ty.name());
    }
}

#[test]
fn rms_norm_rows_and_offsets() {
    let g = gpu();
    let mut rng = Rng(3);
    for (rows, dim) in [(7usize, 576usize), (3, 100), (1, 64)] {
        let x = rng.vec(rows * dim);
        let w = rng.vec(dim);
        let (xg, wg) = (g.upload_f32(&x, &[rows, dim]), g.upload_f32(&w, &[dim]));
        let y = read(&g, &rms_norm(&g, &xg, &wg, dim, 0, rows, 1e-5));
        assert_close(&format!("rms_norm {rows}x{dim}"), &y, &cpu::rms_norm(&x, &w, dim, 1e-5), 1e-7);
        // Only the last row (what the LM head needs).
        let y = read(&g, &rms_norm(&g, &xg, &wg, dim, rows - 1, 1, 1e-5));
        assert_close("rms_norm last row", &y, &cpu::rms_norm(&x[(rows - 1) * dim..], &w, dim, 1e-5), 1e-7);
    }
}

fn rope_case(mode: RopeMode, n_rot: usize, qk_norm: bool) {
    let g = gpu();
    let mut rng = Rng(11 + n_rot as u64);
    let s = HeadShape { n_head: 6, n_kv: 2, hd: 32, n_rot, mode };
    let (t, pos0, ctx) = (3usize, 5usize, 16usize);
    let heads = s.n_head + 2 * s.n_kv;
    let qkv = rng.vec(t * heads * s.hd);
    let factors: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.5).collect();
    let table = rope_table(ctx, n_rot, 10000.0, 1.0, Some(&factors));
    let nw = rng.vec(2 * s.hd);
    let mut kc = vec![GUARD; s.n_kv * ctx * s.hd];
    let mut vc = vec![GUARD; s.n_kv * ctx * s.hd];
    let (kg, vg) = (g.upload_f32(&kc, &[s.n_kv, ctx, s.hd]), g.upload_f32(&vc, &[s.n_kv, ctx, s.hd]));
    let (qkvg, tg, nwg) = (g.upload_f32(&qkv, &[t, heads * s.hd]), g.upload_f32(&table, &[table.len()]), g.upload_f32(&nw, &[nw.len()]));
    let norm = qk_norm.then_some((&nwg, 1e-6f32));
    let q = read(&g, &rope_store(&g, &qkvg, &tg, norm, &kg, &vg, s, t, pos0, ctx));
    let want_q = cpu::rope_store(&qkv, &table, qk_norm.then_some((&nw[..], 1e-6)), &mut kc, &mut vc, s, t, pos0, ctx);
    let what = format!("rope {mode:?} n_rot={n_rot} qk_norm={qk_norm}");
    assert_close(&format!("{what} q"), &q, &want_q, 1e-7);
    // Cache rows outside pos0..pos0+t keep their guard values (the CPU twin never touches them).
    for (name, got, want) in [("K cache", read(&g, &kg), kc), ("V cache", read(&g, &vg), vc)] {
        let untouched = want.iter().filter(|&&w| w == GUARD).count();
        assert_eq!(untouched, got.iter().filter(|&&x| x == GUARD).count(), "{what}: {name} guard values");
        for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
            assert!((a == GUARD) == (b == GUARD), "{what}: {name} element {i} written outside pos0..pos0+t");
            assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{what}: {name} element {i}: gpu {a} vs cpu {b}");
        }
    }
}

#[test]
fn rope_adjacent_and_neox_with_factors() {
    rope_case(RopeMode::Adjacent, 32, false);
    rope_case(RopeMode::Neox, 32, false);
    rope_case(RopeMode::Neox, 16, false); // partial rotary: dims 16.. pass through
    rope_case(RopeMode::Neox, 32, true); // qwen3 q/k norm
}

fn attention_case(hd: usize, t: usize, pos0: usize) {
    let g = gpu();
    let mut rng = Rng(5 + hd as u64 + pos0 as u64);
    let s = HeadShape { n_head: 6, n_kv: 2, hd, n_rot: hd, mode: RopeMode::Neox };
    let ctx = pos0 + t + 3;
    let q = rng.vec(s.n_head * t * hd);
    let kc = rng.vec(s.n_kv * ctx * hd);
    let vc = rng.vec(s.n_kv * ctx * hd);
    let (qg, kg, vg) = (g.upload_f32(&q, &[s.n_head, t, hd]), g.upload_f32(&kc, &[s.n_kv, ctx, hd]), g.upload_f32(&vc, &[s.n_kv, ctx, hd]));
    let y = read(&g, &attention(&g, &qg, &kg, &vg, s, t, pos0, ctx));
    let want = cpu::attention(&q, &kc, &vc, s, t, pos0, ctx);
    assert_close(&format!("attention hd={hd} t={t} pos0={pos0}"), &y, &want, 1e-7);
}

#[test]
fn attention_causal_gqa_across_key_tiles() {
    attention_case(64, 1, 0); // first token: one key
    attention_case(64, 5, 7); // prefill after a prefix
    attention_case(64, 3, 70); // more than one 64-key tile
    attention_case(80, 2, 130); // head dim not a multiple of 64, three tiles
    attention_case(128, 4, 61); // tile boundary inside the batch
}

#[test]
fn swiglu_matches_reference() {
    let g = gpu();
    let mut rng = Rng(17);
    let (t, f) = (3, 1536);
    let gu: Vec<f32> = rng.vec(t * 2 * f).iter().map(|x| x * 8.0).collect();
    let gg = g.upload_f32(&gu, &[t, 2 * f]);
    let y = read(&g, &swiglu(&g, &gg, f, t));
    assert_close("swiglu", &y, &cpu::swiglu(&gu, f, t), 1e-7);
}

#[test]
fn activations_match_reference() {
    let g = gpu();
    let mut rng = Rng(23);
    // Random values over the range activations see, plus the edges of exp's range reduction
    // and of tanh's cut-off.
    let mut x: Vec<f32> = rng.vec(20_000).iter().map(|v| v * 16.0).collect();
    x.extend([0.0, -0.0, 1e-7, -1e-7, 0.3465736, -0.3465736, 8.999, 9.0, -9.0, 30.0, -30.0, 85.9, -85.9, -86.5, 87.0, -100.0, 100.0]);
    for a in Act::ALL {
        // exp itself is only compared where it is finite and normal in f32.
        let xs: Vec<f32> = if a == Act::Exp { x.iter().map(|v| v.clamp(-85.0, 88.0)).collect() } else { x.clone() };
        let t = g.upload_f32(&xs, &[xs.len()]);
        let y = read(&g, &activation(&g, &t, a));
        let want = cpu::activation(&xs, a);
        assert_close(&format!("{a:?}"), &y, &want, 1e-7);
        if a == Act::Exp {
            // Relative error within 4 ulp (the shader's polynomial is good to about 2).
            for (i, (&u, &w)) in y.iter().zip(&want).enumerate() {
                assert!((u - w).abs() <= 4.0 * f32::EPSILON * w.abs(), "exp({}) = {u}, want {w} ({i})", xs[i]);
            }
        }
    }
    // Far below exp's range: exactly 0 (no subnormals), and the activations' limits.
    let t = g.upload_f32(&[-87.0, -1000.0, f32::NEG_INFINITY], &[3]);
    assert_eq!(read(&g, &activation(&g, &t, Act::Exp)), vec![0.0; 3]);
    let t = g.upload_f32(&[-200.0, 200.0], &[2]);
    assert_eq!(read(&g, &activation(&g, &t, Act::Sigmoid)), vec![0.0, 1.0]);
    assert_eq!(read(&g, &activation(&g, &t, Act::Tanh)), vec![-1.0, 1.0]);
}

#[test]
fn det_exp_twin_is_bit_identical() {
    // The CPU twin of the shaders' e^x must give the GPU's bits (the softmax and group-norm
    // twins are compared bit for bit through it).
    let g = gpu();
    let mut rng = Rng(31);
    let mut x: Vec<f32> = rng.vec(50_000).iter().map(|v| v * 90.0).collect();
    x.extend([0.0, -0.0, 0.3465736, -0.3465736, 0.34657362, 88.3, 88.4, -86.0, -86.1, 1e-30]);
    let y = read(&g, &activation(&g, &g.upload_f32(&x, &[x.len()]), Act::Exp));
    let want: Vec<f32> = x.iter().map(|&v| cpu::det_exp(v)).collect();
    assert_bits("det_exp", &y, &want);
}

#[test]
fn softmax_matches_reference() {
    let g = gpu();
    let mut rng = Rng(29);
    let (rows, cols) = (37, 77);
    let mut x: Vec<f32> = rng.vec(rows * cols).iter().map(|v| v * 20.0).collect();
    x[5] = f32::NEG_INFINITY; // a masked key
    let y = read(&g, &softmax_rows(&g, &g.upload_f32(&x, &[rows, cols]), rows, cols));
    let mut want = vec![0f32; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| libm::exp(v as f64 - m)).collect();
        let s: f64 = e.iter().sum();
        for c in 0..cols {
            want[r * cols + c] = (e[c] / s) as f32;
        }
    }
    // The true softmax, within float rounding; the twin, to the bit.
    assert_close("softmax", &y, &want, 1e-7);
    assert_eq!(y[5], 0.0);
    assert_bits("softmax", &y, &cpu::softmax_rows(&x, rows, cols));
}

/// Equal to the bit (`==` on floats would let −0 pass for +0).
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let differ: Vec<_> = (0..got.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).take(5).map(|i| (i, got[i], want[i])).collect();
    assert!(differ.is_empty(), "{what}: (index, gpu, cpu twin) {differ:?}");
}

#[test]
fn softmax_rows_bit_identical_to_reference() {
    let g = gpu();
    let mut rng = Rng(37);
    // Rows shorter than, equal to and longer than a workgroup, self-attention's 4096, and more
    // rows than one grid dimension holds (the 2-D dispatch).
    for (rows, len) in [(5usize, 1usize), (9, 63), (4, 64), (7, 65), (3, 4096), (2, 77), (70_000, 3)] {
        let x: Vec<f32> = rng.vec(rows * len).iter().map(|v| v * 30.0).collect();
        let y = read(&g, &softmax_rows(&g, &g.upload_f32(&x, &[rows, len]), rows, len));
        assert_bits(&format!("softmax {rows}x{len}"), &y, &cpu::softmax_rows(&x, rows, len));
        for r in 0..rows {
            let s: f32 = y[r * len..(r + 1) * len].iter().sum();
            assert!((s - 1.0).abs() < 1e-4, "row {r} of {rows}x{len} sums to {s}");
        }
    }
}

#[test]
fn group_norm_bit_identical_to_reference() {
    let g = gpu();
    let mut rng = Rng(41);
    let cases = [
        // GroupNorm: 2 samples, 64 channels in 32 groups of 2, 7×9 pixels (odd spatial size).
        (GroupShape { batch: 2, channels: 64, spatial: 63, groups: 32, c0: 0 }, 64, 1e-6),
        // A part of a bigger tensor: channels 32..48 of 96 (groups of 8).
        (GroupShape { batch: 1, channels: 16, spatial: 100, groups: 2, c0: 32 }, 96, 1e-5),
        // Groups longer than a workgroup's stride many times over (a 64×64 latent).
        (GroupShape { batch: 1, channels: 8, spatial: 4096, groups: 2, c0: 0 }, 8, 1e-6),
        // LayerNorm over 77 tokens of 40.
        (GroupShape { batch: 77, channels: 40, spatial: 1, groups: 1, c0: 0 }, 40, 1e-5),
        // More rows than one grid dimension holds (the 2-D dispatch).
        (GroupShape { batch: 70_000, channels: 4, spatial: 1, groups: 1, c0: 0 }, 4, 1e-5),
    ];
    for (s, gamma_len, eps) in cases {
        // An offset mean, as activations have: the two-pass variance must not lose it.
        let x: Vec<f32> = rng.vec(s.batch * s.channels * s.spatial).iter().map(|v| v * 3.0 + 5.0).collect();
        let (gamma, beta) = (rng.vec(gamma_len), rng.vec(gamma_len));
        let (gg, bg) = (g.upload_f32(&gamma, &[gamma_len]), g.upload_f32(&beta, &[gamma_len]));
        let xg = g.upload_f32(&x, &[x.len()]);
        for silu in [false, true] {
            let y = read(&g, &group_norm(&g, &xg, &gg, &bg, s, eps, silu));
            assert_bits(&format!("group_norm {s:?} silu={silu}"), &y, &cpu::group_norm(&x, &gamma, &beta, s, eps, silu));
        }
        // And the textbook formula in f64.
        let cpg = s.channels / s.groups;
        let len = cpg * s.spatial;
        let y = read(&g, &group_norm(&g, &xg, &gg, &bg, s, eps, false));
        let mut want = vec![0f32; x.len()];
        for grp in 0..s.batch * s.groups {
            let v = &x[grp * len..(grp + 1) * len];
            let mean = v.iter().map(|&a| a as f64).sum::<f64>() / len as f64;
            let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / len as f64;
            for i in 0..len {
                let c = s.c0 + (grp % s.groups) * cpg + i / s.spatial;
                want[grp * len + i] = ((v[i] as f64 - mean) / (var + eps as f64).sqrt() * gamma[c] as f64 + beta[c] as f64) as f32;
            }
        }
        assert_close(&format!("group_norm {s:?} vs f64"), &y, &want, 1e-9);
    }
}

#[test]
fn bmm_both_layouts_bit_identical_to_reference() {
    let g = gpu();
    let mut rng = Rng(0x5eed_b33f);
    // Column counts that are not multiples of 4 exercise the kernel's partial column groups.
    for (batch, m, n, k) in [(3usize, 5usize, 7usize, 9usize), (2, 17, 77, 40), (1, 1, 1, 1)] {
        let a = rng.vec(batch * m * k);
        let b = rng.vec(batch * n * k);
        let ag = g.upload_f32(&a, &[batch, m, k]);
        let bg = g.upload_f32(&b, &[batch, n * k]);
        for (layout, trans) in [(BLayout::Transposed, true), (BLayout::Plain, false)] {
            let y = read(&g, &bmm(&g, &ag, &bg, layout, batch, m, n, k, 0.37));
            let want = cpu::bmm(&a, &b, trans, batch, m, n, k, 0.37);
            // Same operations in the same order: equal to the bit (what keeps a picture
            // identical natively and in the browser).
            assert_bits(&format!("bmm {layout:?} {batch}x{m}x{n}x{k}"), &y, &want);
        }
    }
}

#[test]
fn flash_attn_bit_identical_to_reference() {
    let g = gpu();
    let mut rng = Rng(43);
    // Rows straddling workgroups and batch entries; cross-attention's 77 keys; SD's head sizes;
    // and one split over two dispatches (768 rows each at 4,096 keys × 160), the second
    // starting inside the third batch entry.
    for (batch, tq, tk, d) in [(3usize, 5usize, 7usize, 4usize), (2, 70, 77, 40), (4, 64, 256, 16), (3, 300, 4096, 160)] {
        let q: Vec<f32> = rng.vec(batch * tq * d).iter().map(|v| v * 2.0).collect();
        let (k, v) = (rng.vec(batch * tk * d), rng.vec(batch * tk * d));
        let alpha = 1.0 / (d as f32).sqrt();
        let (qg, kg, vg) = (g.upload_f32(&q, &[batch, tq, d]), g.upload_f32(&k, &[batch, tk, d]), g.upload_f32(&v, &[batch, tk, d]));
        let y = read(&g, &flash_attn(&g, &qg, &kg, &vg, batch, tq, tk, d, alpha));
        assert_bits(&format!("flash_attn {batch}x{tq}x{tk}x{d}"), &y, &cpu::flash_attn(&q, &k, &v, batch, tq, tk, d, alpha));
        // And the textbook two-pass softmax in f64.
        let mut want = vec![0f32; y.len()];
        for row in 0..batch * tq {
            let b = row / tq;
            let s: Vec<f64> = (0..tk)
                .map(|j| (0..d).map(|c| q[row * d + c] as f64 * k[(b * tk + j) * d + c] as f64).sum::<f64>() * alpha as f64)
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for c in 0..d {
                want[row * d + c] = ((0..tk).map(|j| e[j] * v[(b * tk + j) * d + c] as f64).sum::<f64>() / z) as f32;
            }
        }
        assert_close(&format!("flash_attn {batch}x{tq}x{tk}x{d} vs f64"), &y, &want, 1e-9);
    }
}
