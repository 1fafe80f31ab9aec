//! Plain-loop CPU twins of every kernel (llama2.c style): the oracle for the parity tests, and
//! the readable statement of what each kernel computes. Same argument shapes as the GPU side.
//! Accumulations are in f64 where the GPU's order differs, so the reference is the more exact
//! of the two and the tolerance measures the kernel's error alone.

use crate::quant::{dequantize, GgmlType, QuantError};

use super::rope::{HeadShape, RopeMode};

/// Dequantize a whole [rows, cols] weight.
pub fn dequant_matrix(ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Vec<f32>, QuantError> {
    let mut out = vec![0f32; rows * cols];
    dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

/// y[t, n] = Σ_k x[t, k] · w[n, k] (+ b[n]), w already dequantized.
pub fn matmul(x: &[f32], w: &[f32], bias: Option<&[f32]>, t: usize, k: usize, n: usize) -> Vec<f32> {
    let mut y = vec![0f32; t * n];
    for ti in 0..t {
        for ni in 0..n {
            let mut s = 0f64;
            for ki in 0..k {
                s += x[ti * k + ki] as f64 * w[ni * k + ki] as f64;
            }
            y[ti * n + ni] = s as f32 + bias.map_or(0.0, |b| b[ni]);
        }
    }
    y
}

/// Rows of a dequantized [rows, cols] matrix picked by ids.
pub fn get_rows(w: &[f32], cols: usize, ids: &[u32]) -> Vec<f32> {
    ids.iter().flat_map(|&id| w[id as usize * cols..(id as usize + 1) * cols].iter().copied()).collect()
}

/// RMSNorm of each row of x [rows, dim].
pub fn rms_norm(x: &[f32], w: &[f32], dim: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (xr, yr) in x.chunks(dim).zip(y.chunks_mut(dim)) {
        let ss: f64 = xr.iter().map(|&v| v as f64 * v as f64).sum();
        let scale = 1.0 / ((ss / dim as f64) as f32 + eps).sqrt();
        for i in 0..dim {
            yr[i] = xr[i] * scale * w[i];
        }
    }
    y
}

/// Rotate one head vector in place at position `pos` with the cos/sin table.
fn rotate(v: &mut [f32], table: &[f32], pos: usize, n_rot: usize, mode: RopeMode) {
    let half = n_rot / 2;
    for i in 0..half {
        let (i0, i1) = match mode {
            RopeMode::Adjacent => (2 * i, 2 * i + 1),
            RopeMode::Neox => (i, i + half),
        };
        let c = table[(pos * half + i) * 2];
        let s = table[(pos * half + i) * 2 + 1];
        let (x0, x1) = (v[i0], v[i1]);
        v[i0] = x0 * c - x1 * s;
        v[i1] = x0 * s + x1 * c;
    }
}

/// The CPU twin of `rope_store`: returns (q [n_head, t, hd]) and writes rows pos0.. of the caches.
#[allow(clippy::too_many_arguments)]
pub fn rope_store(
    qkv: &[f32],
    table: &[f32],
    qk_norm: Option<(&[f32], f32)>,
    k_cache: &mut [f32],
    v_cache: &mut [f32],
    s: HeadShape,
    t: usize,
    pos0: usize,
    ctx: usize,
) -> Vec<f32> {
    let heads = s.n_head + 2 * s.n_kv;
    let hd = s.hd;
    let mut q = vec![0f32; s.n_head * t * hd];
    for ti in 0..t {
        let pos = pos0 + ti;
        for h in 0..heads {
            let src = &qkv[(ti * heads + h) * hd..(ti * heads + h + 1) * hd];
            let mut v = src.to_vec();
            let kind = if h < s.n_head { 0 } else if h < s.n_head + s.n_kv { 1 } else { 2 };
            if kind < 2 {
                if let Some((w, eps)) = qk_norm {
                    let nw = &w[kind * hd..(kind + 1) * hd];
                    v = rms_norm(&v, nw, hd, eps);
                }
                rotate(&mut v, table, pos, s.n_rot, s.mode);
            }
            match kind {
                0 => q[(h * t + ti) * hd..(h * t + ti + 1) * hd].copy_from_slice(&v),
                1 => {
                    let o = ((h - s.n_head) * ctx + pos) * hd;
                    k_cache[o..o + hd].copy_from_slice(&v)
                }
                _ => {
                    let o = ((h - s.n_head - s.n_kv) * ctx + pos) * hd;
                    v_cache[o..o + hd].copy_from_slice(&v)
                }
            }
        }
    }
    q
}

/// Causal GQA attention: q [n_head, t, hd], caches [n_kv, ctx, hd] → [t, n_head·hd].
pub fn attention(q: &[f32], k_cache: &[f32], v_cache: &[f32], s: HeadShape, t: usize, pos0: usize, ctx: usize) -> Vec<f32> {
    let hd = s.hd;
    let group = s.n_head / s.n_kv;
    let scale = 1.0 / (hd as f64).sqrt();
    let mut out = vec![0f32; t * s.n_head * hd];
    for h in 0..s.n_head {
        let kvh = h / group;
        for ti in 0..t {
            let qv = &q[(h * t + ti) * hd..(h * t + ti + 1) * hd];
            let n_keys = pos0 + ti + 1;
            let scores: Vec<f64> = (0..n_keys)
                .map(|j| {
                    let k = &k_cache[(kvh * ctx + j) * hd..(kvh * ctx + j + 1) * hd];
                    qv.iter().zip(k).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() * scale
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|&x| (x - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..hd {
                let mut acc = 0f64;
                for (j, &p) in e.iter().enumerate() {
                    acc += p * v_cache[(kvh * ctx + j) * hd + d] as f64;
                }
                out[ti * s.n_head * hd + h * hd + d] = (acc / sum) as f32;
            }
        }
    }
    out
}

/// Batched matmul: a [batch, m, k] times b ([batch, k, n], or [batch, n, k] when `b_trans`),
/// scaled by `alpha` → [batch, m, n]. In f32 with the kernel's order (k ascending, scaled once
/// at the end), so the kernel must match it to the bit.
#[allow(clippy::too_many_arguments)]
pub fn bmm(a: &[f32], b: &[f32], b_trans: bool, batch: usize, m: usize, n: usize, k: usize, alpha: f32) -> Vec<f32> {
    let mut c = vec![0f32; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f32;
                for kk in 0..k {
                    let bv = match b_trans {
                        true => b[(bi * n + j) * k + kk],
                        false => b[(bi * k + kk) * n + j],
                    };
                    acc += a[(bi * m + i) * k + kk] * bv;
                }
                c[(bi * m + i) * n + j] = acc * alpha;
            }
        }
    }
    c
}

/// silu(gate) · up over gu [t, 2f].
pub fn swiglu(gu: &[f32], f: usize, t: usize) -> Vec<f32> {
    let mut y = vec![0f32; t * f];
    for ti in 0..t {
        for i in 0..f {
            let g = gu[ti * 2 * f + i] as f64;
            let u = gu[ti * 2 * f + f + i] as f64;
            y[ti * f + i] = (g / (1.0 + (-g).exp()) * u) as f32;
        }
    }
    y
}

/// The activations of `shaders/activation.wgsl`, in f64 with libm's exp/erf/tanh (the true
/// functions, where the shader has its own approximations).
pub fn activation(x: &[f32], act: crate::kernels::activation::Act) -> Vec<f32> {
    use crate::kernels::activation::Act;
    let sigmoid = |v: f64| 1.0 / (1.0 + libm::exp(-v));
    x.iter()
        .map(|&v| {
            let v = v as f64;
            (match act {
                Act::Exp => libm::exp(v),
                Act::Sigmoid => sigmoid(v),
                Act::Silu => v * sigmoid(v),
                Act::QuickGelu => v * sigmoid(1.702 * v),
                Act::Gelu => 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2)),
                Act::GeluTanh => 0.5 * v * (1.0 + libm::tanh((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v))),
                Act::Tanh => libm::tanh(v),
            }) as f32
        })
        .collect()
}

/// 2-D convolution, NCHW, zero padding (`pad_t`, `pad_l` before; the output size decides the
/// rest): the twin of `shaders/conv2d.wgsl`.
pub fn conv2d(x: &[f32], w: &[f32], bias: &[f32], s: crate::kernels::conv::ConvShape) -> Vec<f32> {
    let (ho, wo) = s.out_hw();
    let mut y = vec![0f32; s.batch * s.co * ho * wo];
    for b in 0..s.batch {
        for o in 0..s.co {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0f32;
                    for c in 0..s.ci {
                        for i in 0..s.k {
                            for j in 0..s.k {
                                let (iy, ix) = ((oy * s.stride + i) as isize - s.pad_t as isize, (ox * s.stride + j) as isize - s.pad_l as isize);
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let xv = x[((b * s.ci + c) * s.h + iy as usize) * s.w + ix as usize];
                                acc += xv * w[((o * s.ci + c) * s.k + i) * s.k + j];
                            }
                        }
                    }
                    y[((b * s.co + o) * ho + oy) * wo + ox] = acc + bias[o];
                }
            }
        }
    }
    y
}

/// `shaders/det_exp.wgsl` operation for operation (f32, no fused multiply-adds, round half to
/// even, the literals spelled as there): equal to the GPU's bits, which the softmax and
/// group-norm twins rely on.
#[allow(clippy::excessive_precision)]
pub fn det_exp(x: f32) -> f32 {
    if x > 88.3 {
        return f32::INFINITY;
    }
    if x < -86.0 {
        return 0.0;
    }
    let n = (x * 1.44269504_f32).round_ties_even();
    let r = (x - n * 0.693359375) + n * 2.12194440e-4;
    let mut p = 1.9875691500e-4_f32;
    for c in [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1_f32] {
        p = p * r + c;
    }
    let er = (p * (r * r) + r) + 1.0;
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// What a workgroup of 64 computes for `f` over `len` values: invocation t folds elements
/// t, t + 64, … in turn (from `init`), then the 64 partials meet in a tree (32, 16, … 1).
fn tree_fold(len: usize, init: f32, at: impl Fn(usize) -> f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut part = [init; 64];
    for (t, acc) in part.iter_mut().enumerate() {
        for i in (t..len).step_by(64) {
            *acc = f(*acc, at(i));
        }
    }
    let mut stride = 32;
    while stride > 0 {
        for t in 0..stride {
            part[t] = f(part[t], part[t + stride]);
        }
        stride /= 2;
    }
    part[0]
}

/// The twin of `shaders/softmax.wgsl`: softmax of each of `rows` rows of `len`.
pub fn softmax_rows(x: &[f32], rows: usize, len: usize) -> Vec<f32> {
    let mut y = vec![0f32; rows * len];
    for r in 0..rows {
        let row = &x[r * len..(r + 1) * len];
        let m = tree_fold(len, f32::NEG_INFINITY, |i| row[i], f32::max);
        let s = tree_fold(len, 0.0, |i| det_exp(row[i] - m), |a, b| a + b);
        for i in 0..len {
            y[r * len + i] = det_exp(row[i] - m) / s;
        }
    }
    y
}

/// The twin of `shaders/group_norm.wgsl`: GroupNorm / LayerNorm as [`GroupShape`] describes
/// (see there), then SiLU if `silu`.
///
/// [`GroupShape`]: crate::kernels::norm::GroupShape
pub fn group_norm(x: &[f32], gamma: &[f32], beta: &[f32], s: crate::kernels::norm::GroupShape, eps: f32, silu: bool) -> Vec<f32> {
    let cpg = s.channels / s.groups;
    let len = cpg * s.spatial;
    let mut y = vec![0f32; x.len()];
    for g in 0..s.batch * s.groups {
        let xs = &x[g * len..(g + 1) * len];
        let mean = tree_fold(len, 0.0, |i| xs[i], |a, b| a + b) / len as f32;
        let var = tree_fold(len, 0.0, |i| (xs[i] - mean) * (xs[i] - mean), |a, b| a + b) / len as f32;
        let inv = 1.0 / (var + eps).sqrt();
        let ch0 = (g % s.groups) * cpg + s.c0;
        for i in 0..len {
            let c = ch0 + i / s.spatial;
            let v = (xs[i] - mean) * inv * gamma[c] + beta[c];
            y[g * len + i] = if silu { v / (1.0 + det_exp(-v)) } else { v };
        }
    }
    y
}

/// The twin of `shaders/flash_attn.wgsl`: o = softmax(alpha · q·kᵀ)·v per batch entry with the
/// online softmax, operation for operation (q [batch, tq, d], k/v [batch, tk, d]).
#[allow(clippy::too_many_arguments)]
pub fn flash_attn(q: &[f32], k: &[f32], v: &[f32], batch: usize, tq: usize, tk: usize, d: usize, alpha: f32) -> Vec<f32> {
    let mut o = vec![0f32; batch * tq * d];
    for row in 0..batch * tq {
        let b = row / tq;
        let qr = &q[row * d..(row + 1) * d];
        let mut acc = vec![0f32; d];
        let (mut m, mut l) = (f32::NEG_INFINITY, 0f32);
        for j in 0..tk {
            let kr = &k[(b * tk + j) * d..(b * tk + j + 1) * d];
            let mut s = 0f32;
            for c in 0..d {
                s += qr[c] * kr[c];
            }
            s *= alpha;
            if s > m {
                let c = det_exp(m - s);
                l *= c;
                acc.iter_mut().for_each(|a| *a *= c);
                m = s;
            }
            let p = det_exp(s - m);
            l += p;
            let vr = &v[(b * tk + j) * d..(b * tk + j + 1) * d];
            for c in 0..d {
                acc[c] += p * vr[c];
            }
        }
        for c in 0..d {
            o[row * d + c] = acc[c] / l;
        }
    }
    o
}
