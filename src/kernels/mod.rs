//! Our hand-written WGSL kernels, launched on burn's wgpu tensors through burn-wgpu's
//! `template` feature. One file per op family here, one `.wgsl` per family in `shaders/`, and a
//! plain-loop CPU twin of each in [`reference`] that the parity tests use as the oracle.
//!
//! Conventions shared by every shader: entry point `main`, workgroup size 64, bindings in the
//! order inputs, outputs, params (a `#[repr(C)]` struct mirrored in WGSL, a uniform buffer: see
//! [`launch`]), group 0. Dispatches over more than 65535 workgroups are folded into 2-D
//! ([`grid`]); shaders rebuild the linear index from `num_workgroups`.
//! Pipelines are cached by cubecl under [`ShaderKernel::id`]: (kernel name, quant type, tile,
//! variant, rows, f16).

pub mod activation;
pub mod actquant;
pub mod attention;
pub mod bmm;
pub mod conv;
pub mod ffn;
pub mod flash_attn;
pub mod ggml_ref;
pub mod matmul;
pub mod norm;
pub mod reference;
pub mod rope;
pub mod softmax;

use burn::backend::wgpu::{KernelSource, SourceKernel, SourceTemplate};
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::{BufferBinding, KernelArguments, MetadataBindingInfo};
use burn::cubecl::{CubeCount, CubeDim};

use crate::gpu::Gpu;
use crate::quant::GgmlType;

pub const QUANT_WGSL: &str = include_str!("../../shaders/quant.wgsl");
/// `det_exp`, the driver-independent e^x, appended to every shader that calls it (WGSL has no
/// includes).
const DET_EXP_WGSL: &str = include_str!("../../shaders/det_exp.wgsl");

/// One of our WGSL shaders, optionally specialised for a ggml quant type.
#[derive(Clone, Debug)]
pub struct ShaderKernel {
    pub name: &'static str,
    pub source: &'static str,
    pub qtype: Option<GgmlType>,
    /// Tokens per tile for the matmul (`{{ tile_t }}`); conv2d's kernel size · 16 + stride (its
    /// generated tap code, [`conv::shader_code`]); 0 where unused.
    pub tile_t: u32,
    /// A variant of the shader (`{{ mode }}`): the matmul's "q8" mode, `quantize_act`'s
    /// target; "" where unused.
    pub variant: &'static str,
    /// Weight rows per invocation of the matmul (`{{ rows }}`); flash_attn's head size in
    /// vec4s; 0 where unused.
    pub rows: u32,
    /// Activations stored as f16 (`{{ act }}` = f16 and `enable f16;` in `{{ enable }}`; the
    /// arithmetic stays f32): see [`Precision`]. Only for shaders that declare them.
    pub f16: bool,
}

impl ShaderKernel {
    pub fn plain(name: &'static str, source: &'static str) -> Self {
        ShaderKernel { name, source, qtype: None, tile_t: 0, variant: "", rows: 0, f16: false }
    }
}

/// The `{{ qtype }}` suffix quant.wgsl's `dq_*` functions use.
pub fn wgsl_quant_name(ty: GgmlType) -> &'static str {
    match ty {
        GgmlType::F32 => "f32",
        GgmlType::F16 => "f16",
        GgmlType::BF16 => "bf16",
        GgmlType::Q4_0 => "q4_0",
        GgmlType::Q4_1 => "q4_1",
        GgmlType::Q5_0 => "q5_0",
        GgmlType::Q5_1 => "q5_1",
        GgmlType::Q8_0 => "q8_0",
        GgmlType::Q4_K => "q4_k",
        GgmlType::Q5_K => "q5_k",
        GgmlType::Q6_K => "q6_k",
    }
}

impl KernelSource for ShaderKernel {
    fn source(&self) -> SourceTemplate {
        let template = SourceTemplate::new(self.source)
            .register("tile_t", self.tile_t.to_string())
            .register("rows", self.rows.to_string())
            .register("mode", self.variant)
            .register("enable", if self.f16 { "enable f16;" } else { "" })
            .register("act", if self.f16 { "f16" } else { "f32" });
        // The shaders whose code is generated unrolled by the host.
        let code = match self.name {
            "matmul_q" => matmul_code(self.tile_t, self.rows, self.variant == "q8"),
            "flash_attn" => flash_attn::shader_code(self.rows, self.f16),
            "conv2d" => conv::shader_code(self.tile_t, self.variant).to_vec(),
            _ => Vec::new(),
        };
        let template = code.into_iter().fold(template, |t, (k, v)| t.register(k, v));
        let template = match self.source.contains("det_exp(") {
            true => template.add_template(DET_EXP_WGSL),
            false => template,
        };
        match self.qtype {
            Some(ty) => template
                .add_template(QUANT_WGSL)
                .register("qtype", wgsl_quant_name(ty)),
            None => template,
        }
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.qtype.map(|t| t.id()), self.tile_t, self.variant, self.rows, self.f16))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `matmul_q.wgsl`'s unrolled code for `rows` weight rows × `tile` tokens: f32 activations times
/// dequantized weights, or (q8) integer activations times integer weights with ggml's per-block
/// scaling.
fn matmul_code(tile: u32, rows: u32, q8: bool) -> Vec<(&'static str, String)> {
    let each = |f: &dyn Fn(u32, u32) -> String| {
        (0..rows).flat_map(|r| (0..tile).map(move |i| (r, i))).map(|(r, i)| f(r, i)).collect::<Vec<_>>().join("\n")
    };
    let per_row = |f: &dyn Fn(u32) -> String| (0..rows).map(f).collect::<Vec<_>>().join("\n");
    let per_tok = |f: &dyn Fn(u32) -> String| (0..tile).map(f).collect::<Vec<_>>().join("\n");
    let body = per_row(&|r| {
        let dots = (0..tile)
            .map(|i| match q8 {
                true => format!("        a{r}_{i} += dot_q8(&v, pw{r}, &x{i}, q{i});"),
                false => format!("        a{r}_{i} += dot32(&v, &x{i});"),
            })
            .collect::<Vec<_>>()
            .join("\n");
        match q8 {
            true => format!("        let pw{r} = iquant32(w{r}, c, &v);\n{dots}"),
            false => format!("        dequant32(w{r}, c, &v);\n{dots}"),
        }
    });
    vec![
        ("row_decl", per_row(&|r| format!("    let w{r} = min(r0 + {r}u, P.n - 1u) * P.row_words;"))),
        ("tile_decl", each(&|r, i| format!("    var a{r}_{i} = 0.0;"))),
        (
            "x_decl",
            per_tok(&|i| match q8 {
                true => format!("    var x{i}: array<vec4<f32>, 8>;\n    var q{i} = vec2<f32>(0.0);"),
                false => format!("    var x{i}: array<vec4<f32>, 8>;"),
            }),
        ),
        (
            "x_load",
            per_tok(&|i| match q8 {
                true => format!("        load_x(&x{i}, min(t0 + {i}u, tl) * k4 + c * 8u);\n        q{i} = xparams(min(t0 + {i}u, tl), c);"),
                false => format!("        load_x(&x{i}, min(t0 + {i}u, tl) * k4 + c * 8u);"),
            }),
        ),
        ("tile_body", body),
        (
            "tile_store",
            per_row(&|r| {
                let stores = per_tok(&|i| format!("        store(t0 + {i}u, r0 + {r}u, a{r}_{i}, b);"));
                format!("    if (r0 + {r}u < P.n) {{\n        let b = bias_of(r0 + {r}u);\n{stores}\n    }}")
            }),
        ),
    ]
}

/// How activations are stored between kernels. The arithmetic inside every kernel is f32
/// either way; f16 halves the bytes moved and held, on adapters with `shader-f16` (lavapipe has
/// it, Chrome's SwiftShader does not). burn's own ops on f16 tensors (adds, concatenation) do
/// compute in f16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    /// "f32" | "f16" (the CLI's and the page's spelling).
    pub fn parse(s: &str) -> crate::error::Result<Precision> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(crate::error::Error::InvalidOption(format!("activations \"{other}\": expected f32 or f16"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// The precision a kernel input is stored in (anything but F16 is taken as F32: the
    /// engine makes no other float tensors).
    pub fn of(t: &burn::backend::wgpu::CubeTensor) -> Precision {
        match t.dtype {
            burn::tensor::DType::F16 => Precision::F16,
            _ => Precision::F32,
        }
    }

    pub fn dtype(self) -> burn::tensor::DType {
        match self {
            Precision::F32 => burn::tensor::DType::F32,
            Precision::F16 => burn::tensor::DType::F16,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    pub fn is_f16(self) -> bool {
        self == Precision::F16
    }
}

/// Split a workgroup count over x and y so neither exceeds 65535.
pub fn grid(groups: u32) -> (u32, u32) {
    const MAX: u32 = 65535;
    if groups <= MAX {
        (groups.max(1), 1)
    } else {
        (MAX, groups.div_ceil(MAX))
    }
}

/// Queue one dispatch; `p` (the kernel's `Params`) is bound last, as a uniform buffer.
/// Nothing runs until a readback (or burn) flushes the queue.
///
/// Trap: params go through cubecl's kernel-info uniform, not an uploaded storage buffer. cubecl
/// submits all queued work before every buffer write (the write goes to the queue, not the
/// encoder), so one uploaded params buffer per dispatch made every dispatch its own submit
/// (~1.6 ms each in Chromium on SwiftShader). The info uniform is written from a pool without
/// that flush, and reused when the words repeat. Uniform loads are also cheap on lavapipe,
/// where a storage-buffer load is a loop over the SIMD lanes.
pub(crate) fn launch<T: bytemuck::Pod>(
    gpu: &Gpu,
    kernel: ShaderKernel,
    count: (u32, u32, u32),
    buffers: Vec<BufferBinding>,
    p: &T,
) {
    stats::count();
    gpu.client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(64))),
        CubeCount::Static(count.0, count.1, count.2),
        KernelArguments::new().with_buffers(buffers).with_info(MetadataBindingInfo::custom(info_words(p))),
    );
}

/// A params struct as the u64 words of cubecl's info uniform, which cubecl writes back as
/// native-endian bytes: the struct's bytes unchanged, zero-padded to a whole word.
fn info_words<T: bytemuck::Pod>(p: &T) -> Vec<u64> {
    let words = bytemuck::bytes_of(p).chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_ne_bytes(w)
    });
    words.collect()
}

/// Dispatch statistics, read by `aigc bench`.
pub mod stats {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DISPATCHES: AtomicU64 = AtomicU64::new(0);
    pub fn count() {
        DISPATCHES.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dispatches() -> u64 {
        DISPATCHES.load(Ordering::Relaxed)
    }
}
