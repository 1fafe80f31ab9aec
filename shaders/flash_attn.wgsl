{{ enable }}
// Fused attention of the diffusion models (no mask, any number of keys): for each query row
//   O[b, i, :] = Σ_j p_j V[b, j, :] / Σ_j p_j,  p_j = e^(s_j − m),  s_j = alpha · Q[b, i, :]·K[b, j, :]
// with the running maximum m updated key by key (the online softmax of Milakov & Gimelshein
// 2018, as in FlashAttention): whenever a score exceeds m, what was summed so far is rescaled
// by e^(m_old − m_new). The score matrix is never written, so there is no softmax pass and no
// chunking of queries to fit it in a binding.
//
// One invocation per query row; Q, K, V, O contiguous [batch, rows, d], read as vec4 (d is a
// multiple of 4; the host falls back to bmm + softmax otherwise). The row's q and its output
// accumulator live in `{{ d4 }}` vec4 variables, the code over them generated unrolled by the
// host (SwiftShader's JIT keeps loop-indexed arrays in memory). `row0` offsets the rows so the
// host can split a large attention over several dispatches.
//
// Same bits on every IEEE-exact driver (lavapipe, SwiftShader; WGSL allows ÷ 2.5 ulp): the
// dot product is summed component by component in a fixed order (WGSL's dot() leaves its
// order to the driver), e^x is det_exp (appended by the host), and the output is a division.
// kernels::reference::flash_attn does the same in the same order.

struct Params {
    // rows (queries) per batch entry, keys per batch entry, rows of this dispatch, first row
    tq: u32,
    tk: u32,
    rows: u32,
    row0: u32,
    alpha: f32,
    // 1.0 and +inf from the host (det_exp's traps)
    one: f32,
    inf: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read_write> Q: array<vec4<{{ act }}>>;
@group(0) @binding(1) var<storage, read_write> K: array<vec4<{{ act }}>>;
@group(0) @binding(2) var<storage, read_write> V: array<vec4<{{ act }}>>;
@group(0) @binding(3) var<storage, read_write> O: array<vec4<{{ act }}>>;
@group(0) @binding(4) var<uniform> P: Params;

// s + t.x + t.y + t.z + t.w, left to right.
fn add4(s: f32, t: vec4<f32>) -> f32 {
    return (((s + t.x) + t.y) + t.z) + t.w;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let local = gid.x + gid.y * nwg.x * 64u;
    if (local >= P.rows) { return; }
    let row = P.row0 + local;              // b · tq + i
    let b = row / P.tq;
    let qo = row * {{ d4 }}u;
    let kb = b * P.tk * {{ d4 }}u;
{{ q_decl }}
{{ a_decl }}
    var m = -P.inf;
    var l = 0.0;
    for (var j = 0u; j < P.tk; j++) {
        let kj = kb + j * {{ d4 }}u;
        var s = 0.0;
{{ dot }}
        s = s * P.alpha;
        if (s > m) {
            // The first key: m = −inf, so c = 0 and the (zero) sums stay zero.
            let c = det_exp(m - s);
            l = l * c;
{{ rescale }}
            m = s;
        }
        let p = det_exp(s - m);
        l = l + p;
{{ accum }}
    }
{{ store }}
}
