//! Quantized weights on the GPU and the two kernels that read them: `matmul_q` (GEMV for decode,
//! token-tiled GEMM for prefill) and `get_rows` (embedding lookup). Shaders: `matmul_q.wgsl`,
//! `get_rows.wgsl`, both with `quant.wgsl`'s block decoders prepended.
//!
//! Weights stay in their GGUF blocks, repacked once at upload so every field is word-aligned
//! ([`repack`]: Q4_0/Q5_0/Q8_0 get 2 pad bytes after their f16 scale, Q6_K 2 at the end; at most
//! 11% more bytes, and no byte-by-byte extraction in the kernels); they dequantize in registers.
//! A [`Linear`] may hold several parts whose outputs sit side by side (Q|K|V, gate|up): parts of
//! one quant type are concatenated at upload (rows are independent, so their bytes simply
//! append) and run as one dispatch; parts of different types become separate dispatches into
//! column windows of the same output buffer.

use burn::backend::wgpu::CubeTensor;
use burn::cubecl::server::Handle;

use super::actquant::{quantize_act, ActMode, Numerics};
use super::{grid, launch, Precision, ShaderKernel};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::GgmlType;

const MATMUL: &str = include_str!("../../shaders/matmul_q.wgsl");
const GET_ROWS: &str = include_str!("../../shaders/get_rows.wgsl");

/// Invocations per workgroup of `matmul_q.wgsl`.
const GROUP: u32 = 64;
/// Tokens per tile for prefill (decode uses 1).
const TILE_T: u32 = 4;
/// Weight rows per invocation: decode (at most; see [`decode_rows`]), prefill. Each activation
/// load serves this many rows (see the shader). Measured on lavapipe (SmolLM2, 2 cores):
/// decode 1.59 / 1.79 / 1.83 tokens/s with 4 / 8 / 16 rows; 128-token prefill 3.9 / 5.3 / 5.7
/// tokens/s with 4 rows × 8 tokens / 8 × 4 / 8 × 8 (SwiftShader: 5.0 / 5.0 / 6.0). Every
/// (row, token) pair is unrolled code, and 8 × 8 made the quant-type test suites 2-3× slower
/// to compile their pipelines (kernels 15 → 50 s, ggml_numerics 42 → 82 s), so prefill tiles
/// are 8 rows × 4 tokens.
const ROWS_DECODE: u32 = 8;
const ROWS_PREFILL: u32 = 8;

/// Rows per invocation for a decode GEMV over `n` rows: ROWS_DECODE, halved (to 4 at least)
/// until there are 2 workgroups to share between the driver's threads.
fn decode_rows(n: u32) -> u32 {
    let mut r = ROWS_DECODE;
    while r > 4 && n < 2 * GROUP * r {
        r /= 2;
    }
    r
}

/// Bytes of one block on the GPU after [`repack`].
pub fn gpu_block_bytes(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q6_K => ty.type_size() + 2,
        _ => ty.type_size(),
    }
}

/// Make every field of every block word-aligned (the layout `quant.wgsl` reads).
pub fn repack(ty: GgmlType, bytes: &[u8]) -> Vec<u8> {
    let bs = ty.type_size();
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => {
            let mut out = Vec::with_capacity(bytes.len() / bs * (bs + 2));
            for b in bytes.chunks_exact(bs) {
                out.extend_from_slice(&b[..2]);
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&b[2..]);
            }
            out
        }
        GgmlType::Q6_K => {
            let mut out = Vec::with_capacity(bytes.len() / bs * (bs + 2));
            for b in bytes.chunks_exact(bs) {
                out.extend_from_slice(b);
                out.extend_from_slice(&[0, 0]);
            }
            out
        }
        _ => bytes.to_vec(),
    }
}

/// A 2-D weight [rows, cols] in GGUF blocks on the GPU (row-major: `cols` is ggml's ne[0]).
#[derive(Clone)]
pub struct QWeight {
    pub handle: Handle,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// GGUF bytes per row (before repacking).
    pub row_bytes: usize,
    /// u32 words per row on the GPU (after repacking).
    pub row_words: usize,
}

impl QWeight {
    /// Check shape against the type and upload raw blocks.
    pub fn upload(gpu: &Gpu, ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<QWeight> {
        let row_bytes = ty
            .row_bytes(cols as u64)
            .ok_or_else(|| Error::ModelConfig(format!("{cols} columns is not a whole number of {} blocks", ty.name())))?
            as usize;
        if cols % 32 != 0 {
            return Err(Error::UnsupportedModel(format!(
                "matrix with {cols} columns: the kernels need a multiple of 32"
            )));
        }
        let want = row_bytes.checked_mul(rows).ok_or_else(|| Error::ModelConfig("weight size overflows".into()))?;
        if bytes.len() != want {
            return Err(Error::ModelConfig(format!("weight has {} bytes, expected {want}", bytes.len())));
        }
        let row_words = cols / ty.block_size() * gpu_block_bytes(ty) / 4;
        if (row_words * 4 * rows) as u64 > gpu.max_binding {
            return Err(Error::OutOfMemory(format!(
                "a {} MiB weight exceeds this GPU's {} MiB storage binding limit",
                want >> 20,
                gpu.max_binding >> 20
            )));
        }
        let handle = gpu.upload_bytes(&repack(ty, bytes));
        Ok(QWeight { handle, ty, rows, cols, row_bytes, row_words })
    }

    /// Upload as several row blocks, each within the adapter's storage-binding limit (real
    /// embeddings exceed 128 MiB). Returns (weight, first row) pairs.
    pub fn upload_split(gpu: &Gpu, ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Vec<(QWeight, usize)>> {
        let gpu_row = (cols / ty.block_size()) * gpu_block_bytes(ty);
        let per_part = (gpu.max_binding as usize / gpu_row.max(1)).min(rows.max(1));
        if per_part == 0 {
            return Err(Error::OutOfMemory(format!(
                "one {gpu_row}-byte row exceeds this GPU's storage binding limit of {} bytes",
                gpu.max_binding
            )));
        }
        if rows <= per_part {
            return Ok(vec![(QWeight::upload(gpu, ty, rows, cols, bytes)?, 0)]);
        }
        // Rows of GGUF bytes (before repacking); `upload` checks the total against the shape.
        let row_bytes = ty.row_bytes(cols as u64).unwrap_or(0) as usize;
        if row_bytes.checked_mul(rows) != Some(bytes.len()) {
            return Err(Error::ModelConfig(format!("weight has {} bytes, expected {rows} rows of {row_bytes}", bytes.len())));
        }
        let mut parts = Vec::new();
        let mut r0 = 0;
        while r0 < rows {
            let n = per_part.min(rows - r0);
            parts.push((QWeight::upload(gpu, ty, n, cols, &bytes[r0 * row_bytes..(r0 + n) * row_bytes])?, r0));
            r0 += n;
        }
        Ok(parts)
    }

    /// Bytes on the GPU.
    pub fn n_bytes(&self) -> usize {
        self.rows * self.row_words * 4
    }
}

/// A linear layer: one or more weight parts, outputs concatenated, optional bias.
#[derive(Clone)]
pub struct Linear {
    /// (weight, first output column)
    pub parts: Vec<(QWeight, usize)>,
    pub bias: Option<CubeTensor>,
    pub n_out: usize,
    pub n_in: usize,
}

impl Linear {
    /// Build from parts given as (type, rows, raw bytes), all with `cols` inputs.
    pub fn upload(gpu: &Gpu, cols: usize, parts: &[(GgmlType, usize, &[u8])], bias: Option<&[f32]>) -> Result<Linear> {
        let mut out = Vec::new();
        let mut col = 0usize;
        let mut i = 0;
        while i < parts.len() {
            // Merge the run of parts sharing this part's type into one buffer.
            let ty = parts[i].0;
            let mut j = i;
            let mut rows = 0usize;
            let mut bytes: Vec<u8> = Vec::new();
            while j < parts.len() && parts[j].0 == ty {
                rows += parts[j].1;
                bytes.extend_from_slice(parts[j].2);
                j += 1;
            }
            for (w, r0) in QWeight::upload_split(gpu, ty, rows, cols, &bytes)? {
                out.push((w, col + r0));
            }
            col += rows;
            i = j;
        }
        let bias = match bias {
            Some(b) if b.len() != col => {
                return Err(Error::ModelConfig(format!("bias has {} entries for {col} outputs", b.len())))
            }
            Some(b) => Some(gpu.upload_f32(b, &[col])),
            None => None,
        };
        Ok(Linear { parts: out, bias, n_out: col, n_in: cols })
    }

    pub fn n_bytes(&self) -> usize {
        self.parts.iter().map(|(w, _)| w.n_bytes()).sum()
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    k: u32,
    n: u32,
    t: u32,
    row_words: u32,
    out_stride: u32,
    out_col: u32,
    flags: u32,
    _pad: u32,
}

/// y = x · Wᵀ (+ bias) for x [t, n_in] → y [t, n_out].
pub fn matmul(gpu: &Gpu, x: &CubeTensor, lin: &Linear, t: usize) -> CubeTensor {
    linear(gpu, x, lin, t, Numerics::F32)
}

/// [`matmul`] with the chosen numerics.
pub fn linear(gpu: &Gpu, x: &CubeTensor, lin: &Linear, t: usize, numerics: Numerics) -> CubeTensor {
    // Stored as x is (f32, or f16 for the diffusion models' f16 activations).
    let y = gpu.empty(&[t, lin.n_out], Precision::of(x));
    linear_into(gpu, x, lin, t, &y, false, numerics);
    y
}

/// Write (or with `accumulate`, add) x · Wᵀ (+ bias) into `y` [t, n_out] in place. Adding is how
/// the residual connection happens without a separate dispatch.
pub fn matmul_into(gpu: &Gpu, x: &CubeTensor, lin: &Linear, t: usize, y: &CubeTensor, accumulate: bool) {
    linear_into(gpu, x, lin, t, y, accumulate, Numerics::F32)
}

/// [`matmul_into`] with the chosen numerics: under [`Numerics::Ggml`] the activations are first
/// rounded as llama.cpp's CPU backend rounds them for each part's weight type (once per mode).
pub fn linear_into(gpu: &Gpu, x: &CubeTensor, lin: &Linear, t: usize, y: &CubeTensor, accumulate: bool, numerics: Numerics) {
    // Every binding must be bound even when unused: a 4-byte stand-in when there is no bias.
    let bias = match &lin.bias {
        Some(b) => b.handle.clone(),
        None => gpu.unused.clone(),
    };
    let mut rounded: Vec<(ActMode, CubeTensor)> = Vec::new();
    for (w, col) in &lin.parts {
        let act = match numerics {
            Numerics::F32 => None,
            Numerics::Ggml => ActMode::for_weight(w.ty),
        };
        let input = match act {
            None => x.clone(),
            Some(mode) => match rounded.iter().find(|(m, _)| *m == mode) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = quantize_act(gpu, x, t, lin.n_in, mode);
                    rounded.push((mode, r.clone()));
                    r
                }
            },
        };
        let (tile, rows) = if t == 1 { (1, decode_rows(w.rows as u32)) } else { (TILE_T, ROWS_PREFILL) };
        let groups = (w.rows as u32).div_ceil(GROUP * rows);
        let (gx, gy) = grid(groups);
        let flags = u32::from(lin.bias.is_some()) | (u32::from(accumulate) << 1);
        let p = MatmulParams {
            k: w.cols as u32,
            n: w.rows as u32,
            t: t as u32,
            row_words: w.row_words as u32,
            out_stride: lin.n_out as u32,
            out_col: *col as u32,
            flags,
            _pad: 0,
        };
        let variant = if act.is_some_and(ActMode::is_integer) { "q8" } else { "" };
        // f16 storage of X and Y (the shader trusts both to be alike: cubecl builds modules
        // without bounds checks); `quantize_act`'s rounded activations (text only) are f32.
        let f16 = Precision::of(y).is_f16();
        debug_assert!(Precision::of(&input) == Precision::of(y), "matmul_q: input and output precisions differ");
        launch(
            gpu,
            ShaderKernel { name: "matmul_q", source: MATMUL, qtype: Some(w.ty), tile_t: tile, variant, rows, f16 },
            (gx, gy, (t as u32).div_ceil(tile)),
            vec![
                w.handle.clone().binding(),
                input.handle.clone().binding(),
                bias.clone().binding(),
                y.handle.clone().binding(),
            ],
            &p,
        );
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GetRowsParams {
    k: u32,
    t: u32,
    row_words: u32,
    row0: u32,
    n_rows: u32,
    _pad: [u32; 3],
}

/// Embedding lookup: [t, n_in] f32 rows of the table `emb` (rows = `n_out`) picked by `ids` (a
/// u32 buffer of t ids). A table split over several buffers takes one dispatch per part, each
/// writing the rows whose ids fall in it.
pub fn get_rows(gpu: &Gpu, emb: &Linear, ids: &Handle, t: usize) -> CubeTensor {
    let y = gpu.empty_f32(&[t, emb.n_in]);
    for (w, row0) in &emb.parts {
        let p = GetRowsParams {
            k: w.cols as u32,
            t: t as u32,
            row_words: w.row_words as u32,
            row0: *row0 as u32,
            n_rows: w.rows as u32,
            _pad: [0; 3],
        };
        let items = (t * w.cols / 32) as u32;
        let (gx, gy) = grid(items.div_ceil(64));
        launch(
            gpu,
            ShaderKernel { qtype: Some(w.ty), ..ShaderKernel::plain("get_rows", GET_ROWS) },
            (gx, gy, 1),
            vec![w.handle.clone().binding(), ids.clone().binding(), y.handle.clone().binding()], &p,
        );
    }
    y
}
