{{ enable }}
// GroupNorm and LayerNorm: each group of `len` contiguous values is normalised by its own mean
// and variance, then scaled and shifted per channel, then (mode "silu") passed through SiLU:
//   Y = act((X − mean) · (1 / sqrt(var + eps)) · gamma[c] + beta[c]).
// GroupNorm of [B, C, H, W] with G groups: B·G groups of len = (C/G)·H·W, `spatial` = H·W
// values per channel. LayerNorm of [N, C]: N groups of len = C, spatial = 1, one group per
// sample. `c0` offsets the channel index when the tensor holds only a slice of the channels
// (nn::Parts splits big activations by whole groups).
//
// One workgroup of 64 per group, two passes over X for the statistics (mean, then the mean of
// squared deviations, as the textbook and candle do; a one-pass Σx² loses digits when the
// mean is large) and one to write Y. Sums in a fixed order (each invocation strides by 64,
// then a tree), mirrored by kernels::reference::group_norm for bit equality.

struct Params {
    // values per group, values per channel, channels per group
    len: u32,
    spatial: u32,
    cpg: u32,
    // groups per sample in this tensor; all groups (workgroups); channel offset
    groups: u32,
    n_groups: u32,
    c0: u32,
    eps: f32,
    // 1.0 and +inf from the host (det_exp's traps; `one` also keeps 1/sqrt from being folded
    // into a division of each value, which would round differently on one driver).
    one: f32,
    inf: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> X: array<{{ act }}>;
@group(0) @binding(1) var<storage, read_write> Gamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> Beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<{{ act }}>;
@group(0) @binding(4) var<uniform> P: Params;

var<workgroup> red: array<f32, 64>;

// The workgroup's sum of every invocation's `v`, in the tree order; all invocations get it.
fn tree_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { red[lid] += red[lid + stride]; }
        workgroupBarrier();
    }
    let s = red[0];
    workgroupBarrier();
    return s;
}

fn act_none(y: f32) -> f32 {
    return y;
}

fn act_silu(y: f32) -> f32 {
    return y / (P.one + det_exp(-y));
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    // Spare workgroups of a 2-D grid redo the last group and write nothing (no early return:
    // the barriers must stay in uniform control flow).
    let gi = wid.x + wid.y * nwg.x;
    let g = min(gi, P.n_groups - 1u);
    let x0 = g * P.len;
    var s = 0.0;
    for (var i = lid; i < P.len; i += 64u) {
        s += f32(X[x0 + i]);
    }
    let mean = tree_sum(lid, s) / f32(P.len);
    var q = 0.0;
    for (var i = lid; i < P.len; i += 64u) {
        let d = f32(X[x0 + i]) - mean;
        q += d * d;
    }
    let var_ = tree_sum(lid, q) / f32(P.len);
    let inv = P.one / sqrt(var_ + P.eps);
    let ch0 = (g % P.groups) * P.cpg + P.c0;
    let n = select(0u, P.len, gi < P.n_groups);
    for (var i = lid; i < n; i += 64u) {
        let c = ch0 + i / P.spatial;
        Y[x0 + i] = {{ act }}(act_{{ mode }}((f32(X[x0 + i]) - mean) * inv * Gamma[c] + Beta[c]));
    }
}
