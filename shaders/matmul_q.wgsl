// Quantized matmul: Y[t, n] (+)= sum_k X[t, k] * W[n, k] (+ bias[n]), W in (repacked) GGUF blocks.
//
// One invocation per (output row, tile of TILE_T tokens): it walks the row's 32-element chunks,
// dequantizes each once in registers and dots it with the TILE_T token rows of X, so each weight
// is read once per tile (TILE_T = 1 is the decode GEMV; prefill uses a larger tile). No
// workgroup memory and no barriers: on a CPU Vulkan driver (lavapipe) barriers split the shader
// and cost more than the reduction saves; all loops have constant trip counts apart from the
// chunk loop, so `v` and `acc` stay in registers.
// Dispatch: x,y = row groups of 64 (folded to 2-D past 65535), z = token tiles.
// The output may be a column window of a wider buffer (`out_stride`, `out_col`): that is how Q,
// K and V (or gate and up) land side by side without a copy.

const TILE_T: u32 = {{ tile_t }}u;

struct Params {
    k: u32,            // input features (multiple of 32; of 256 for K-quants)
    n: u32,            // output rows of this weight
    t: u32,            // tokens
    row_words: u32,    // u32 words per (repacked) weight row
    out_stride: u32,   // floats per row of Y
    out_col: u32,      // first column of Y written
    flags: u32,        // bit 0: add bias B[out_col + row], bit 1: accumulate into Y
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> W: array<u32>;
@group(0) @binding(1) var<storage, read_write> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> P: Params;

// v · X[t, 32c .. 32c+32], X read as vec4 rows (k is a multiple of 32).
fn dot32(v: ptr<function, array<f32, 32>>, x0: u32) -> f32 {
    return dot(vec4<f32>((*v)[0], (*v)[1], (*v)[2], (*v)[3]), X[x0])
         + dot(vec4<f32>((*v)[4], (*v)[5], (*v)[6], (*v)[7]), X[x0 + 1u])
         + dot(vec4<f32>((*v)[8], (*v)[9], (*v)[10], (*v)[11]), X[x0 + 2u])
         + dot(vec4<f32>((*v)[12], (*v)[13], (*v)[14], (*v)[15]), X[x0 + 3u])
         + dot(vec4<f32>((*v)[16], (*v)[17], (*v)[18], (*v)[19]), X[x0 + 4u])
         + dot(vec4<f32>((*v)[20], (*v)[21], (*v)[22], (*v)[23]), X[x0 + 5u])
         + dot(vec4<f32>((*v)[24], (*v)[25], (*v)[26], (*v)[27]), X[x0 + 6u])
         + dot(vec4<f32>((*v)[28], (*v)[29], (*v)[30], (*v)[31]), X[x0 + 7u]);
}

// "q8" mode (llama.cpp-compatible numerics): X holds `quantize_act`'s output, integer
// activations [t, k] then a (scale, sum) pair per (token, 32-chunk); the weight chunk comes from
// `iquant32` as integers and (p, m): ggml's per-block float arithmetic on an exact integer dot.
fn xparams(tok: u32, c: u32) -> vec2<f32> {
    let i = (P.t * P.k) / 2u + tok * (P.k / 32u) + c;
    let x = X[i / 2u];
    if ((i & 1u) == 0u) { return x.xy; }
    return x.zw;
}

fn dot_q8(v: ptr<function, array<f32, 32>>, pw: vec2<f32>, tok: u32, c: u32) -> f32 {
    let xp = xparams(tok, c);
    return pw.x * xp.x * dot32(v, tok * (P.k / 4u) + c * 8u) + pw.y * xp.y;
}

fn store(t: u32, row: u32, acc: f32, bias: f32) {
    if (t < P.t) {
        let o = t * P.out_stride + P.out_col + row;
        var y = acc + bias;
        if ((P.flags & 2u) != 0u) { y += Y[o]; }
        Y[o] = y;
    }
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= P.n) { return; }
    let k4 = P.k / 4u;
    // From workgroup_id, not global_invocation_id: the compiler can then see that every X
    // address below is the same for all invocations (a broadcast load, not a gather).
    let t0 = wid.z * TILE_T;
    let tl = P.t - 1u;
    let base = row * P.row_words;
    let chunks = P.k / 32u;
    // The per-token accumulators are separate scalars, written out by the host for each tile
    // size: an array indexed in a loop lands in memory on CPU drivers and costs 10x.
{{ tile_decl }}
    var v: array<f32, 32>;
    for (var c = 0u; c < chunks; c++) {
{{ chunk_decode }}
        // Tokens past the end re-read the last row; their sums are never written.
{{ tile_body }}
    }
    var bias = 0.0;
    if ((P.flags & 1u) != 0u) { bias = B[P.out_col + row]; }
{{ tile_store }}
}
