// SiLU-gated FFN activation: Y[t, i] = silu(GU[t, i]) * GU[t, F + i], where GU is the fused
// gate|up projection [T, 2F] (gate columns first). silu(x) = x / (1 + exp(-x)).

struct Params {
    f: u32,
    t: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> GU: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= P.t * P.f) { return; }
    let t = idx / P.f;
    let i = idx % P.f;
    let g = GU[t * 2u * P.f + i];
    let u = GU[t * 2u * P.f + P.f + i];
    Y[idx] = g / (1.0 + exp(-g)) * u;
}
