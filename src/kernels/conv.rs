//! 2-D convolution (`shaders/conv2d.wgsl`) for the diffusion models: NCHW activations, PyTorch
//! weights [co, ci, k, k] laid out once at load as rows of taps ([`ConvWeight`]), a bias, zero
//! padding given as top/left (bottom/right follow from the output size). CPU twin:
//! [`super::reference::conv2d`] (on the weights as [`ConvWeight::dequantized`] gives them back).
//!
//! Ours rather than burn's `conv2d` so the diffusion models follow the project's kernel
//! conventions (one shader per op family, a CPU twin, a parity test) and so quantized weights
//! (Q8_0 / Q4_0 in blocks of 32 output channels of one tap) are dequantized in registers.

use burn::backend::wgpu::CubeTensor;
use burn::cubecl::server::Handle;

use super::{grid, launch, wgsl_quant_name, Precision, ShaderKernel};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::{dequantize, quantize_q4_0, quantize_q8_0, GgmlType};

const SRC: &str = include_str!("../../shaders/conv2d.wgsl");

/// Output channels per invocation (the kernel's register tile is 8 channels × [`PX`] pixels).
const CH: usize = 8;
/// Output pixels along a row per invocation.
const PX: usize = 8;
/// Largest kernel size and stride the generated tap code is made for (SD uses 1 and 3, 1 and 2).
const MAX_K: usize = 7;
const MAX_STRIDE: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    ci: u32,
    h: u32,
    w: u32,
    co: u32,
    ho: u32,
    wo: u32,
    pad_t: u32,
    pad_l: u32,
    w_ld: u32,
    w_row0: u32,
    w_col0: u32,
    cgroups: u32,
    flags: u32,
    x_c0: u32,
    x_ct: u32,
}

/// The geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_t: usize,
    pub pad_l: usize,
    pub pad_b: usize,
    pub pad_r: usize,
}

impl ConvShape {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        let ho = (self.h + self.pad_t + self.pad_b).saturating_sub(self.k) / self.stride.max(1) + 1;
        let wo = (self.w + self.pad_l + self.pad_r).saturating_sub(self.k) / self.stride.max(1) + 1;
        (ho, wo)
    }
}

/// Convolution weights on the GPU: row `(c·k + i)·k + j` holds the `co` output channels of that
/// tap, padded to a multiple of 32, as f32 or as Q8_0 / Q4_0 blocks of 32 channels (GGUF block
/// arithmetic; Q8_0/Q4_0 blocks get 2 pad bytes after their scale, as the matmul's do).
/// A weight larger than one storage binding (SD's 2560→1280 3×3 convs are 118 MiB in f32) is
/// kept in parts of whole input channels — contiguous row ranges — each its own buffer, and the
/// convolution sums over them.
#[derive(Clone)]
pub struct ConvWeight {
    /// (buffer, first input channel, input channels) per part.
    pub parts: Vec<(Handle, usize, usize)>,
    pub ty: GgmlType,
    pub co: usize,
    pub ci: usize,
    pub k: usize,
    /// Channels per weight row (co rounded up to 32).
    pub ld: usize,
}

impl ConvWeight {
    /// Lay out PyTorch weights [co, ci, k, k] as tap rows, optionally quantized (`ty` F32, Q8_0
    /// or Q4_0).
    pub fn upload(gpu: &Gpu, w: &[f32], co: usize, ci: usize, k: usize, ty: GgmlType) -> Result<ConvWeight> {
        let rows = ci * k * k;
        if w.len() != co * rows || co == 0 || rows == 0 {
            return Err(Error::ModelConfig(format!("convolution weight has {} values, expected {co}×{ci}×{k}×{k}", w.len())));
        }
        let (t, ld) = tap_rows(w, co, rows);
        let bytes: Vec<u8> = match ty {
            GgmlType::F32 => bytemuck::cast_slice(&t).to_vec(),
            GgmlType::Q8_0 | GgmlType::Q4_0 => super::matmul::repack(ty, &quantize(ty, &t)),
            other => return Err(Error::UnsupportedModel(format!("convolution weights in {}", other.name()))),
        };
        let channel_bytes = bytes.len() / ci; // k² rows
        let per_part = (gpu.max_binding / channel_bytes as u64) as usize;
        if per_part == 0 {
            return Err(Error::OutOfMemory(format!(
                "one input channel of a convolution weight ({channel_bytes} bytes) exceeds this GPU's {}-byte storage binding limit",
                gpu.max_binding
            )));
        }
        let parts = (0..ci)
            .step_by(per_part)
            .map(|c0| {
                let n = per_part.min(ci - c0);
                (gpu.upload_bytes(&bytes[c0 * channel_bytes..(c0 + n) * channel_bytes]), c0, n)
            })
            .collect();
        Ok(ConvWeight { parts, ty, co, ci, k, ld })
    }

    /// Bytes on the GPU.
    pub fn n_bytes(&self) -> usize {
        let rows = self.ci * self.k * self.k;
        match self.ty {
            GgmlType::F32 => rows * self.ld * 4,
            ty => rows * self.ld / 32 * super::matmul::gpu_block_bytes(ty),
        }
    }

    /// What the kernel multiplies by: PyTorch-layout [co, ci, k, k] f32 weights after the
    /// quantization round trip (the CPU twin's input).
    pub fn dequantized(w: &[f32], co: usize, ci: usize, k: usize, ty: GgmlType) -> Vec<f32> {
        if !matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0) {
            return w.to_vec();
        }
        let rows = ci * k * k;
        let (t, ld) = tap_rows(w, co, rows);
        let mut back = vec![0f32; t.len()];
        if dequantize(ty, &quantize(ty, &t), &mut back).is_err() {
            return w.to_vec();
        }
        let mut out = vec![0f32; w.len()];
        for o in 0..co {
            for r in 0..rows {
                out[o * rows + r] = back[r * ld + o];
            }
        }
        out
    }
}

/// PyTorch [co, rows] → tap rows [rows, ld] with ld = co rounded up to 32 (zero padded).
fn tap_rows(w: &[f32], co: usize, rows: usize) -> (Vec<f32>, usize) {
    let ld = co.div_ceil(32) * 32;
    let mut t = vec![0f32; rows * ld];
    for o in 0..co {
        for r in 0..rows {
            t[r * ld + o] = w[o * rows + r];
        }
    }
    (t, ld)
}

/// GGUF blocks of `x` in Q8_0, or else Q4_0.
fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    if ty == GgmlType::Q8_0 { quantize_q8_0(x) } else { quantize_q4_0(x) }
}

/// Which part of the weight one call uses: output channels `o0 .. o0 + co` (o0 a multiple of 8)
/// and input channels `i0 ..` (as many as the input has).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvWindow {
    pub o0: usize,
    pub i0: usize,
}

/// x [B, ci, h, w], the whole weight, bias [co] → [B, co, ho, wo], stored as x is (f32 or f16).
pub fn conv2d(gpu: &Gpu, x: &CubeTensor, weight: &ConvWeight, bias: &CubeTensor, s: ConvShape) -> Result<CubeTensor> {
    let (ho, wo) = s.out_hw();
    let y = gpu.empty(&[s.batch, s.co, ho, wo], Precision::of(x));
    conv2d_into(gpu, x, weight, bias, s, ConvWindow::default(), &y, false, true)?;
    Ok(y)
}

/// The convolution of `x` with a window of `weight` (`s.ci` inputs from `win.i0`, `s.co`
/// outputs from `win.o0`), written into `y` [B, s.co, ho, wo] — or added to it with
/// `accumulate`; the bias (indexed from `win.o0`) only with `add_bias`. `x` and `y` are stored
/// alike (f32 or f16).
///
/// Trap (f16): a weight kept in several buffers is summed through `y`, so each part's partial
/// sum is rounded to f16 before the next is added; one buffer (every quantized SD weight) does
/// not round in between.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_into(
    gpu: &Gpu,
    x: &CubeTensor,
    weight: &ConvWeight,
    bias: &CubeTensor,
    s: ConvShape,
    win: ConvWindow,
    y: &CubeTensor,
    accumulate: bool,
    add_bias: bool,
) -> Result<()> {
    let (ho, wo) = s.out_hw();
    if s.k == 0 || s.stride == 0 || s.h + s.pad_t + s.pad_b < s.k || s.w + s.pad_l + s.pad_r < s.k {
        return Err(Error::InvalidOption(format!("convolution {s:?} has no output")));
    }
    if s.k > MAX_K || s.stride > MAX_STRIDE {
        return Err(Error::UnsupportedModel(format!("convolution kernel {k}×{k} with stride {}: at most {MAX_K}×{MAX_K}, stride {MAX_STRIDE}", s.stride, k = s.k)));
    }
    if s.k != weight.k || win.i0 + s.ci > weight.ci || win.o0 + s.co > weight.co || win.o0 % CH != 0 {
        return Err(Error::ModelConfig(format!(
            "convolution {s:?} (inputs from {}, outputs from {}) does not fit its {}×{}×{k}×{k} weight",
            win.i0,
            win.o0,
            weight.co,
            weight.ci,
            k = weight.k
        )));
    }
    let prec = Precision::of(x);
    if Precision::of(y) != prec {
        return Err(Error::Gpu(format!("convolution input is {prec:?}, output {:?}", Precision::of(y))));
    }
    let out_bytes = (prec.bytes() * s.batch * s.co * ho * wo) as u64;
    let in_bytes = (prec.bytes() * s.batch * s.ci * s.h * s.w) as u64;
    if out_bytes.max(in_bytes) > gpu.max_binding {
        return Err(Error::OutOfMemory(format!(
            "convolution of {in_bytes} bytes in, {out_bytes} out exceeds the {}-byte storage binding limit",
            gpu.max_binding
        )));
    }
    let cgroups = s.co.div_ceil(CH);
    let base = Params {
        ci: s.ci as u32,
        h: s.h as u32,
        w: s.w as u32,
        co: s.co as u32,
        ho: ho as u32,
        wo: wo as u32,
        pad_t: s.pad_t as u32,
        pad_l: s.pad_l as u32,
        w_ld: weight.ld as u32,
        w_row0: 0,
        w_col0: win.o0 as u32,
        cgroups: cgroups as u32,
        flags: 0,
        x_c0: 0,
        x_ct: s.ci as u32,
    };
    let pixel_groups = (ho * wo.div_ceil(PX)) as u32;
    let (gx, gy) = grid(pixel_groups.div_ceil(64));
    let z = (s.batch * cgroups) as u32;
    if z > 65535 {
        return Err(Error::OutOfMemory(format!("convolution of batch {} × {} channel groups exceeds one dispatch", s.batch, cgroups)));
    }
    let wq = wgsl_quant_name(weight.ty);
    // One dispatch per weight part that overlaps the input channels win.i0 .. win.i0 + s.ci;
    // the first writes (or accumulates, as asked) and adds the bias, the rest add into y.
    let mut first = true;
    for (handle, c0, n) in &weight.parts {
        let lo = win.i0.max(*c0);
        let hi = (win.i0 + s.ci).min(c0 + n);
        if lo >= hi {
            continue;
        }
        let p = Params {
            ci: (hi - lo) as u32,
            w_row0: ((lo - c0) * s.k * s.k) as u32,
            x_c0: (lo - win.i0) as u32,
            flags: u32::from(accumulate || !first) | (u32::from(add_bias && first) << 1),
            ..base
        };
        first = false;
        launch(
            gpu,
            ShaderKernel {
                name: "conv2d",
                source: SRC,
                qtype: None,
                tile_t: (s.k * 16 + s.stride) as u32,
                variant: wq,
                rows: 0,
                f16: prec.is_f16(),
            },
            (gx, gy, z),
            vec![
                x.handle.clone().binding(),
                handle.clone().binding(),
                bias.handle.clone().binding(),
                y.handle.clone().binding(),
            ],
            &p,
        );
    }
    Ok(())
}

/// The shader's generated, unrolled code for kernel size `k` and `stride` (the pipeline key
/// `tile_t = k·16 + stride`) and weight decoder `w8_<mode>`: accumulator declarations, the loads
/// of one input row's span, the taps of that row, the stores.
pub(super) fn shader_code(key: u32, mode: &str) -> [(&'static str, String); 6] {
    let (k, s) = ((key / 16) as usize, (key % 16) as usize);
    let lane = |c: usize| format!("{}.{}", if c < 4 { "a" } else { "b" }, ["x", "y", "z", "w"][c % 4]);
    let acc = (0..CH).flat_map(|c| (0..PX / 4).map(move |h| format!("    var a{c}{h} = vec4<f32>(0.0);"))).collect::<Vec<_>>();
    let loads = (0..(PX - 1) * s + k).map(|m| format!("            let x{m} = xat(xr, bx + {m}u);")).collect::<Vec<_>>();
    let mut taps = Vec::new();
    for j in 0..k {
        taps.push(format!("            {{\n                let wt = w8_{mode}(row0 + {j}u, col);"));
        for h in 0..PX / 4 {
            let px = (0..4).map(|q| format!("x{}", (4 * h + q) * s + j)).collect::<Vec<_>>().join(", ");
            taps.push(format!("                let p{h} = vec4<f32>({px});"));
        }
        for c in 0..CH {
            for h in 0..PX / 4 {
                taps.push(format!("                a{c}{h} += wt.{} * p{h};", lane(c)));
            }
        }
        taps.push("            }".into());
    }
    let store = (0..CH)
        .flat_map(|c| (0..PX / 4).map(move |h| format!("    store(b, o + {c}u, oy, ox + {}u, a{c}{h});", 4 * h)))
        .collect::<Vec<_>>();
    [
        ("k", k.to_string()),
        ("stride", s.to_string()),
        ("conv_acc", acc.join("\n")),
        ("conv_loads", loads.join("\n")),
        ("conv_taps", taps.join("\n")),
        ("conv_store", store.join("\n")),
    ]
}
