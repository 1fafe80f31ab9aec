//! ggml tensor types and the CPU dequantization oracle.
//!
//! [`dequantize`] is the reference the GPU kernels are tested against, so it follows llama.cpp's
//! `ggml-quants.c` `dequantize_row_*` loops operation for operation (same products, same order, no
//! fused multiply-add): its output is bit-exact with the `gguf` PyPI package
//! (`gguf.quants.dequantize`), which `tests/quant.rs` checks against committed fixtures.
//! [`quantize_q8_0`] and [`quantize_q4_0`] mirror `quantize_row_q8_0_ref` / `quantize_row_q4_0_ref`.
//!
//! Traps (all blocks are little-endian and packed; sizes are not multiples of 4):
//! - Nibble order: in Q4_0/Q4_1/Q5_0/Q5_1 the *low* nibble of `qs[j]` is element `j` and the *high*
//!   nibble is element `j + 16`; it is not interleaved (elements 2j, 2j+1).
//! - Q5 high bits: `qh` is a little-endian u32; bit `j` is the 5th bit of element `j` (0..32).
//! - K-quant scales: 8 sub-blocks of 32, each with a 6-bit scale and 6-bit min packed into 12 bytes
//!   (see [`scale_min_k4`]). In Q4_K/Q5_K each 32-byte group of `qs` holds two sub-blocks: low nibbles
//!   first, then high nibbles. Q5_K takes bit `2i` / `2i+1` of `qh[l]` for sub-blocks `2i` / `2i+1`.
//! - Q6_K puts `d` *last*; its 16 scales are signed `i8`.
//! - f16 NaN payloads: `half` sets the quiet bit, numpy does not. Finite values and ±inf are exact.
//!
//! Indexing below is into fixed-size block arrays with constant loop bounds, so it cannot fail.

use half::f16;

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// The ggml tensor types aigc implements.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType { F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K }

/// Every implemented type, in id order.
pub const ALL_TYPES: [GgmlType; 11] = [
    GgmlType::F32, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
    GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::BF16,
];

impl GgmlType {
    /// The implemented type with this ggml id, or `None` (see [`ggml_type_name`] for the others).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        ALL_TYPES.iter().copied().find(|t| t.id() == id)
    }

    /// The ggml type id as stored in GGUF tensor infos.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0, F16 => 1, Q4_0 => 2, Q4_1 => 3, Q5_0 => 6, Q5_1 => 7, Q8_0 => 8,
            Q4_K => 12, Q5_K => 13, Q6_K => 14, BF16 => 30,
        }
    }

    /// ggml's name for the type ("F32", "Q4_K", …).
    pub fn name(self) -> &'static str {
        ggml_type_name(self.id())
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => 32,
            Q4_K | Q5_K | Q6_K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 => 4, F16 | BF16 => 2,
            Q4_0 => 18, Q4_1 => 20, Q5_0 => 22, Q5_1 => 24, Q8_0 => 34,
            Q4_K => 144, Q5_K => 176, Q6_K => 210,
        }
    }

    /// Bytes holding `n` elements; `None` if `n` is not a multiple of the block size or on overflow.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n.is_multiple_of(bs) {
            return None;
        }
        (n / bs).checked_mul(self.type_size() as u64)
    }
}

/// ggml's name for any type id, including ones aigc does not implement; "unknown" otherwise.
/// Removed ids (4, 5, 31–33, 36–38) are named too, so that errors can say what the file uses.
pub fn ggml_type_name(id: u32) -> &'static str {
    match id {
        0 => "F32", 1 => "F16", 2 => "Q4_0", 3 => "Q4_1", 4 => "Q4_2 (removed)", 5 => "Q4_3 (removed)",
        6 => "Q5_0", 7 => "Q5_1", 8 => "Q8_0", 9 => "Q8_1", 10 => "Q2_K", 11 => "Q3_K", 12 => "Q4_K",
        13 => "Q5_K", 14 => "Q6_K", 15 => "Q8_K", 16 => "IQ2_XXS", 17 => "IQ2_XS", 18 => "IQ3_XXS",
        19 => "IQ1_S", 20 => "IQ4_NL", 21 => "IQ3_S", 22 => "IQ2_S", 23 => "IQ4_XS", 24 => "I8",
        25 => "I16", 26 => "I32", 27 => "I64", 28 => "F64", 29 => "IQ1_M", 30 => "BF16",
        31 => "Q4_0_4_4 (removed)", 32 => "Q4_0_4_8 (removed)", 33 => "Q4_0_8_8 (removed)",
        34 => "TQ1_0", 35 => "TQ2_0", 36 => "IQ4_NL_4_4 (removed)", 37 => "IQ4_NL_4_8 (removed)",
        38 => "IQ4_NL_8_8 (removed)", 39 => "MXFP4", 40 => "NVFP4", 41 => "Q1_0",
        _ => "unknown",
    }
}

/// Dequantization input errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    #[error("{ty}: {elements} elements is not a multiple of the block size {block_size}")]
    NotBlockMultiple { ty: &'static str, elements: usize, block_size: usize },
    #[error("{ty}: {elements} elements need {expected} bytes, got {got}")]
    LengthMismatch { ty: &'static str, elements: usize, expected: u64, got: usize },
}

#[inline]
fn f16_le(lo: u8, hi: u8) -> f32 {
    f16::from_le_bytes([lo, hi]).to_f32()
}

/// `get_scale_min_k4`: 6-bit (scale, min) of sub-block `j` (0..8) from the 12 packed bytes.
/// Bytes 0–3: scale j (low 6 bits) + top 2 bits of scale j+4; bytes 4–7: min j + top 2 bits of
/// min j+4; bytes 8–11: low nibble = low 4 bits of scale j+4, high nibble = low 4 bits of min j+4.
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Dequantize whole blocks: `out.len()` elements from `bytes` (exactly `row_bytes(out.len())`).
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let bs = ty.block_size();
    if !out.len().is_multiple_of(bs) {
        return Err(QuantError::NotBlockMultiple { ty: ty.name(), elements: out.len(), block_size: bs });
    }
    let expected = (out.len() / bs) as u64 * ty.type_size() as u64;
    if bytes.len() as u64 != expected {
        return Err(QuantError::LengthMismatch { ty: ty.name(), elements: out.len(), expected, got: bytes.len() });
    }
    match ty {
        GgmlType::F32 => {
            for (b, y) in bytes.as_chunks::<4>().0.iter().zip(out.iter_mut()) {
                *y = f32::from_le_bytes(*b);
            }
        }
        GgmlType::F16 => {
            for (b, y) in bytes.as_chunks::<2>().0.iter().zip(out.iter_mut()) {
                *y = f16_le(b[0], b[1]);
            }
        }
        GgmlType::BF16 => {
            // bf16 is the top half of an f32: exact, NaN payloads included.
            for (b, y) in bytes.as_chunks::<2>().0.iter().zip(out.iter_mut()) {
                *y = f32::from_bits((u16::from_le_bytes(*b) as u32) << 16);
            }
        }
        GgmlType::Q4_0 => zip_blocks::<18, 32>(bytes, out, dequant_q4_0),
        GgmlType::Q4_1 => zip_blocks::<20, 32>(bytes, out, dequant_q4_1),
        GgmlType::Q5_0 => zip_blocks::<22, 32>(bytes, out, dequant_q5_0),
        GgmlType::Q5_1 => zip_blocks::<24, 32>(bytes, out, dequant_q5_1),
        GgmlType::Q8_0 => zip_blocks::<34, 32>(bytes, out, dequant_q8_0),
        GgmlType::Q4_K => zip_blocks::<144, QK_K>(bytes, out, dequant_q4_k),
        GgmlType::Q5_K => zip_blocks::<176, QK_K>(bytes, out, dequant_q5_k),
        GgmlType::Q6_K => zip_blocks::<210, QK_K>(bytes, out, dequant_q6_k),
    }
    Ok(())
}

/// Dequantize `bytes` (a whole number of blocks) into a new vector.
pub fn dequantize_row_to_vec(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, QuantError> {
    let ts = ty.type_size();
    if !bytes.len().is_multiple_of(ts) {
        return Err(QuantError::LengthMismatch {
            ty: ty.name(),
            elements: bytes.len() / ts * ty.block_size(),
            expected: (bytes.len() / ts * ts) as u64,
            got: bytes.len(),
        });
    }
    let mut out = vec![0f32; bytes.len() / ts * ty.block_size()];
    dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

fn zip_blocks<const B: usize, const N: usize>(bytes: &[u8], out: &mut [f32], f: fn(&[u8; B], &mut [f32; N])) {
    for (b, y) in bytes.as_chunks::<B>().0.iter().zip(out.as_chunks_mut::<N>().0.iter_mut()) {
        f(b, y);
    }
}

// Q4_0: f16 d | u8 qs[16]. y = (q - 8) * d.
fn dequant_q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_le(b[0], b[1]);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

// Q4_1: f16 d | f16 m | u8 qs[16]. y = q * d + m.
fn dequant_q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let (d, m) = (f16_le(b[0], b[1]), f16_le(b[2], b[3]));
    for j in 0..16 {
        let q = b[4 + j];
        y[j] = (q & 0x0F) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

// Q5_0: f16 d | u32 qh | u8 qs[16]. y = ((q | hbit << 4) - 16) * d.
fn dequant_q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16_le(b[0], b[1]);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..16 {
        let q = b[6 + j];
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        y[j] = (((q & 0x0F) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = (((q >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

// Q5_1: f16 d | f16 m | u32 qh | u8 qs[16]. y = (q | hbit << 4) * d + m.
fn dequant_q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let (d, m) = (f16_le(b[0], b[1]), f16_le(b[2], b[3]));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..16 {
        let q = b[8 + j];
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        y[j] = ((q & 0x0F) | h0) as f32 * d + m;
        y[j + 16] = ((q >> 4) | h1) as f32 * d + m;
    }
}

// Q8_0: f16 d | i8 qs[32]. y = q * d.
fn dequant_q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_le(b[0], b[1]);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

fn k_scales(b: &[u8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for (dst, src) in s.iter_mut().zip(b.iter().skip(4)) {
        *dst = *src;
    }
    s
}

// Q4_K: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]. y = (d*sc) * q - (dmin*m).
fn dequant_q4_k(b: &[u8; 144], y: &mut [f32; QK_K]) {
    let (d, dmin) = (f16_le(b[0], b[1]), f16_le(b[2], b[3]));
    let scales = k_scales(b);
    for g in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * g, &scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, &scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            let q = b[16 + 32 * g + l];
            y[64 * g + l] = d1 * (q & 0xF) as f32 - m1;
            y[64 * g + 32 + l] = d2 * (q >> 4) as f32 - m2;
        }
    }
}

// Q5_K: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128].
fn dequant_q5_k(b: &[u8; 176], y: &mut [f32; QK_K]) {
    let (d, dmin) = (f16_le(b[0], b[1]), f16_le(b[2], b[3]));
    let scales = k_scales(b);
    for g in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * g, &scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, &scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
        for l in 0..32 {
            let (ql, qh) = (b[48 + 32 * g + l], b[16 + l]);
            let h1 = if qh & u1 != 0 { 16 } else { 0 };
            let h2 = if qh & u2 != 0 { 16 } else { 0 };
            y[64 * g + l] = d1 * ((ql & 0xF) + h1) as f32 - m1;
            y[64 * g + 32 + l] = d2 * ((ql >> 4) + h2) as f32 - m2;
        }
    }
}

// Q6_K: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d. y = (d * sc) * (q - 32).
fn dequant_q6_k(b: &[u8; 210], y: &mut [f32; QK_K]) {
    let d = f16_le(b[208], b[209]);
    for n in 0..2 {
        let (ql, qh, sc, yo) = (64 * n, 128 + 32 * n, 192 + 8 * n, 128 * n);
        for l in 0..32 {
            let is = l / 16;
            let h = b[qh + l];
            let q1 = ((b[ql + l] & 0xF) | (h & 3) << 4) as i8 - 32;
            let q2 = ((b[ql + l + 32] & 0xF) | ((h >> 2) & 3) << 4) as i8 - 32;
            let q3 = ((b[ql + l] >> 4) | ((h >> 4) & 3) << 4) as i8 - 32;
            let q4 = ((b[ql + l + 32] >> 4) | ((h >> 6) & 3) << 4) as i8 - 32;
            let s = |k: usize| (b[sc + is + k] as i8) as f32;
            y[yo + l] = d * s(0) * q1 as f32;
            y[yo + l + 32] = d * s(2) * q2 as f32;
            y[yo + l + 64] = d * s(4) * q3 as f32;
            y[yo + l + 96] = d * s(6) * q4 as f32;
        }
    }
}

/// `quantize_row_q8_0_ref`: d = amax / 127, q = round-half-away(x / d).
/// `src.len()` should be a multiple of 32; a trailing partial block is quantized as if zero-padded.
pub fn quantize_q8_0(src: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len().div_ceil(32) * 34);
    for x in src.chunks(32) {
        let amax = x.iter().fold(0f32, |a, v| if a > v.abs() { a } else { v.abs() }); // C MAX()
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        for j in 0..32 {
            let v = x.get(j).copied().unwrap_or(0.0);
            out.push(((v * id).round() as i8) as u8); // `round` is C `roundf`; `as` saturates
        }
    }
    out
}

/// `quantize_row_q4_0_ref`: d = (signed value of max |x|, first one wins) / -8,
/// q = min(15, (int8)(x / d + 8.5)). Same length convention as [`quantize_q8_0`].
pub fn quantize_q4_0(src: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len().div_ceil(32) * 18);
    for x in src.chunks(32) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        let q = |j: usize| {
            let v = x.get(j).copied().unwrap_or(0.0);
            ((v * id + 8.5) as i8).clamp(0, 15) as u8 // C: MIN(15, (int8_t)(x + 8.5f))
        };
        for j in 0..16 {
            out.push(q(j) | (q(j + 16) << 4));
        }
    }
    out
}
