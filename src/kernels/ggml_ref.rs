//! CPU twin of the llama.cpp-compatible numerics ([`super::actquant`]): ggml's activation
//! quantizers (`quantize_row_q8_1` as its AVX code does it, `quantize_row_q8_K_ref`) and its
//! `vec_dot_<type>_q8_*` dot products, written as plain loops over the GGUF bytes (not the GPU's
//! repacked blocks). Block arithmetic is exact (f64) on the values ggml stores (f16 scales, i8
//! quants), so the reference differs from ggml only by ggml's own f32 accumulation order.

use half::{bf16, f16};

use super::actquant::ActMode;
use crate::quant::{scale_min_k4, GgmlType, QuantError};

/// One activation block as ggml stores it: Q8_0/Q8_1 (32 values, f16 d and s) or Q8_K (256
/// values, f32 d, sums of 16).
#[derive(Clone, Debug)]
pub struct Q8Block {
    pub d: f32,
    /// Q8_1: f16(d · Σq); Q8_K: unused.
    pub s: f32,
    pub qs: Vec<i8>,
    /// Q8_K: Σ of each 16 quants.
    pub bsums: Vec<i32>,
}

fn f16r(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// ggml's AVX `quantize_row_q8_1` (and `_q8_0`: the same quants and d) on one row.
pub fn quantize_q8_1(x: &[f32]) -> Vec<Q8Block> {
    x.chunks(32)
        .map(|b| {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let qs: Vec<i8> = b.iter().map(|v| (v * id).round_ties_even() as i8).collect();
            let sum: i32 = qs.iter().map(|&q| q as i32).sum();
            Q8Block { d: f16r(d), s: f16r(d * sum as f32), qs, bsums: vec![] }
        })
        .collect()
}

/// ggml's `quantize_row_q8_K_ref` on one row.
pub fn quantize_q8_k(x: &[f32]) -> Vec<Q8Block> {
    x.chunks(256)
        .map(|b| {
            let (mut amax, mut max) = (0f32, 0f32);
            for &v in b {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                return Q8Block { d: 0.0, s: 0.0, qs: vec![0; 256], bsums: vec![0; 16] };
            }
            let iscale = -127.0 / max;
            let qs: Vec<i8> = b.iter().map(|v| ((iscale * v).round_ties_even() as i32).min(127) as i8).collect();
            let bsums = qs.chunks(16).map(|c| c.iter().map(|&q| q as i32).sum()).collect();
            Q8Block { d: 1.0 / iscale, s: 0.0, qs, bsums }
        })
        .collect()
}

/// The twin of `quantize_act`: the same flat layout (values, then a (d, s) pair per 32-chunk).
pub fn quantize_act(x: &[f32], k: usize, mode: ActMode) -> Vec<f32> {
    let t = x.len() / k;
    match mode {
        ActMode::F16 => x.iter().map(|&v| f16r(v)).collect(),
        ActMode::BF16 => x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
        ActMode::Q8_1 | ActMode::Q8K => {
            let mut vals = Vec::with_capacity(mode.out_len(t, k));
            let mut pars = Vec::new();
            for row in x.chunks(k) {
                if mode == ActMode::Q8_1 {
                    for b in quantize_q8_1(row) {
                        vals.extend(b.qs.iter().map(|&q| q as f32));
                        pars.extend([b.d, b.s]);
                    }
                } else {
                    for b in quantize_q8_k(row) {
                        vals.extend(b.qs.iter().map(|&q| q as f32));
                        for c in 0..8 {
                            pars.extend([b.d, b.d * (b.bsums[2 * c] + b.bsums[2 * c + 1]) as f32]);
                        }
                    }
                }
            }
            vals.extend(pars);
            vals
        }
    }
}

fn h(b: &[u8], at: usize) -> f64 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f64()
}

/// Integer quants of one 32-block of the Q4/Q5 types in element order (ggml's dequantize_row).
fn q32_ints(ty: GgmlType, b: &[u8]) -> [i32; 32] {
    let mut q = [0i32; 32];
    let (qs_at, qh, off) = match ty {
        GgmlType::Q4_0 => (2, None, 8),
        GgmlType::Q4_1 => (4, None, 0),
        GgmlType::Q5_0 => (6, Some(u32::from_le_bytes([b[2], b[3], b[4], b[5]])), 16),
        GgmlType::Q5_1 => (8, Some(u32::from_le_bytes([b[4], b[5], b[6], b[7]])), 0),
        _ => {
            for (j, v) in q.iter_mut().enumerate() {
                *v = b[2 + j] as i8 as i32; // Q8_0
            }
            return q;
        }
    };
    for j in 0..16 {
        let (h0, h1) = qh.map_or((0, 0), |qh| ((((qh >> j) & 1) << 4) as i32, (((qh >> (j + 16)) & 1) << 4) as i32));
        q[j] = (b[qs_at + j] & 0xF) as i32 + h0 - off;
        q[j + 16] = (b[qs_at + j] >> 4) as i32 + h1 - off;
    }
    q
}

/// Q4_K/Q5_K: (quants 0..31 of each 32-element sub-block, scales, mins) of one 256-block.
fn k4_ints(ty: GgmlType, b: &[u8]) -> ([i32; 256], [i32; 8], [i32; 8]) {
    let mut scales = [0u8; 12];
    scales.copy_from_slice(&b[4..16]);
    let (mut q, mut sc, mut mn) = ([0i32; 256], [0i32; 8], [0i32; 8]);
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &scales);
        (sc[j], mn[j]) = (s as i32, m as i32);
    }
    let qs_at = if ty == GgmlType::Q5_K { 48 } else { 16 };
    for g in 0..4 {
        for l in 0..32 {
            let v = b[qs_at + 32 * g + l];
            let (mut lo, mut hi) = ((v & 0xF) as i32, (v >> 4) as i32);
            if ty == GgmlType::Q5_K {
                let qh = b[16 + l];
                lo += (((qh >> (2 * g)) & 1) as i32) << 4;
                hi += (((qh >> (2 * g + 1)) & 1) as i32) << 4;
            }
            q[64 * g + l] = lo;
            q[64 * g + 32 + l] = hi;
        }
    }
    (q, sc, mn)
}

/// Q6_K: (quants − 32 in element order, the 16 scales) of one 256-block.
fn q6_ints(b: &[u8]) -> ([i32; 256], [i32; 16]) {
    let mut q = [0i32; 256];
    for n in 0..2 {
        let (ql, qh, yo) = (64 * n, 128 + 32 * n, 128 * n);
        for l in 0..32 {
            let hb = b[qh + l] as i32;
            q[yo + l] = ((b[ql + l] & 0xF) as i32 | ((hb & 3) << 4)) - 32;
            q[yo + l + 32] = ((b[ql + l + 32] & 0xF) as i32 | (((hb >> 2) & 3) << 4)) - 32;
            q[yo + l + 64] = ((b[ql + l] >> 4) as i32 | (((hb >> 4) & 3) << 4)) - 32;
            q[yo + l + 96] = ((b[ql + l + 32] >> 4) as i32 | (((hb >> 6) & 3) << 4)) - 32;
        }
    }
    let mut sc = [0i32; 16];
    for (i, s) in sc.iter_mut().enumerate() {
        *s = b[192 + i] as i8 as i32;
    }
    (q, sc)
}

/// ggml's dot product of one weight row (GGUF bytes of type `ty`) with one activation row.
pub fn vec_dot(ty: GgmlType, w: &[u8], x: &[f32]) -> f64 {
    let dot = |a: &[i32], q: &[i8]| a.iter().zip(q).map(|(&a, &q)| a * q as i32).sum::<i32>() as f64;
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let mut wf = vec![0f32; x.len()];
            let _ = crate::quant::dequantize(ty, w, &mut wf);
            let xr: Vec<f32> = match ActMode::for_weight(ty) {
                Some(m) => quantize_act(x, x.len(), m),
                None => x.to_vec(),
            };
            wf.iter().zip(&xr).map(|(&a, &b)| a as f64 * b as f64).sum()
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
            let bs = ty.type_size();
            let has_min = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
            w.chunks(bs)
                .zip(quantize_q8_1(x))
                .map(|(b, y)| {
                    let sumi = dot(&q32_ints(ty, b), &y.qs);
                    let m = if has_min { h(b, 2) * y.s as f64 } else { 0.0 };
                    h(b, 0) * y.d as f64 * sumi + m
                })
                .sum()
        }
        GgmlType::Q4_K | GgmlType::Q5_K => w
            .chunks(ty.type_size())
            .zip(quantize_q8_k(x))
            .map(|(b, y)| {
                let (q, sc, mn) = k4_ints(ty, b);
                let sumi: f64 = (0..8).map(|j| sc[j] as f64 * dot(&q[32 * j..32 * j + 32], &y.qs[32 * j..32 * j + 32])).sum();
                let mins: f64 = (0..8).map(|j| (mn[j] * (y.bsums[2 * j] + y.bsums[2 * j + 1])) as f64).sum();
                h(b, 0) * y.d as f64 * sumi - h(b, 2) * y.d as f64 * mins
            })
            .sum(),
        GgmlType::Q6_K => w
            .chunks(ty.type_size())
            .zip(quantize_q8_k(x))
            .map(|(b, y)| {
                let (q, sc) = q6_ints(b);
                let sumi: f64 = (0..16).map(|g| sc[g] as f64 * dot(&q[16 * g..16 * g + 16], &y.qs[16 * g..16 * g + 16])).sum();
                h(b, 208) * y.d as f64 * sumi
            })
            .sum(),
    }
}

/// y[t, n] = ggml's matmul of x [t, k] by the weight [n, k] given as GGUF bytes.
pub fn matmul(ty: GgmlType, w: &[u8], x: &[f32], t: usize, k: usize, n: usize) -> Result<Vec<f32>, QuantError> {
    let row = ty.row_bytes(k as u64).unwrap_or(0) as usize;
    if row * n != w.len() || x.len() != t * k {
        return Err(QuantError::LengthMismatch { ty: ty.name(), elements: n * k, expected: (row * n) as u64, got: w.len() });
    }
    let mut y = vec![0f32; t * n];
    for ti in 0..t {
        for ni in 0..n {
            y[ti * n + ni] = vec_dot(ty, &w[ni * row..(ni + 1) * row], &x[ti * k..(ti + 1) * k]) as f32;
        }
    }
    Ok(y)
}
