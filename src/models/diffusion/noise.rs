//! Seeded Gaussian noise for diffusion: the initial latents and the per-step noise of the
//! ancestral/consistency schedulers.
//!
//! Owns [`NoiseRng`] (one seeded stream), [`BatchNoise`] (one stream per candidate of a batch) and
//! the [`NoiseSource`] trait through which schedulers draw noise (so tests can inject a fixed list).
//!
//! The promise of this module: a seed gives the same `f32` bits on every platform, native and
//! wasm32. Hence our own generator and our own Gaussian transform, with `ln`/`sin`/`cos` from the
//! `libm` crate (a pure-Rust port of musl's libm), never `f64::ln` & co., which call the platform's
//! libm natively (glibc, Apple, MSVC all differ in the last bit) and musl's port in wasm32.
//! `sqrt`, `+ - * /` and the f64→f32 conversion are correctly rounded by IEEE 754 everywhere.
//!
//! # The exact algorithm (to reproduce in JS or Python)
//! 1. State: xoshiro256** (Blackman & Vigna, <https://prng.di.unimi.it/xoshiro256starstar.c>),
//!    its four u64 words filled by four successive SplitMix64 outputs started from `seed`
//!    (`x += 0x9e3779b97f4a7c15; z = x; z = (z ^ z>>30) * 0xbf58476d1ce4e5b9;
//!    z = (z ^ z>>27) * 0x94d049bb133111eb; out = z ^ z>>31`, all wrapping u64). This is the same
//!    generator as `crate::sampling`'s.
//! 2. One Gaussian pair from two consecutive u64 outputs `a`, `b` (Box & Muller 1958):
//!    `u1 = ((a >> 11) + 1) * 2^-53`  in (0, 1]  (never 0, so `ln` is finite),
//!    `u2 = (b >> 11) * 2^-53`        in [0, 1),
//!    `r = sqrt(-2 * ln(u1))`, `θ = 2π * u2` with `2π = 6.283185307179586` (the f64 nearest),
//!    `z0 = r * cos(θ)`, `z1 = r * sin(θ)`, all in f64 (`ln`, `cos`, `sin` = musl's
//!    `log`, `cos`, `sin`), then each rounded to f32 (round to nearest even).
//! 3. Values are emitted z0, z1, z0', z1', …; an odd request keeps the unused z1 for the next call,
//!    so the stream does not depend on how draws are chunked: `randn(3)` then `randn(5)` gives
//!    the same 8 values as `randn(8)`.
//!
//! Candidate `k` of `--count N` uses seed `S + k` (wrapping), in its own stream, whether the
//! candidates run one by one or batched ([`BatchNoise`]): a candidate's image does not depend on
//! how many were generated with it.

use crate::sampling::Rng;

/// A source of standard-normal f32 values; schedulers draw their per-step noise through it.
pub trait NoiseSource {
    /// `n` values of N(0, 1).
    fn randn(&mut self, n: usize) -> Vec<f32>;
}

/// One seeded stream of N(0, 1) values, bit-identical on every platform (see the module header).
#[derive(Clone, Debug)]
pub struct NoiseRng {
    /// The text sampler's generator (xoshiro256** seeded through SplitMix64, so any seed, even
    /// 0, gives a good state).
    rng: Rng,
    /// The second value of the last Box–Muller pair when a call asked for an odd count.
    spare: Option<f32>,
}

impl NoiseRng {
    pub fn new(seed: u64) -> NoiseRng {
        NoiseRng { rng: Rng::new(seed), spare: None }
    }

    /// The next raw xoshiro256** output.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// One Box–Muller pair, computed in f64 and rounded to f32 (step 2 of the header).
    fn pair(&mut self) -> (f32, f32) {
        const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
        const TWO_PI: f64 = std::f64::consts::TAU; // 6.283185307179586
        // +1: u1 in (0, 1], so ln(u1) <= 0 is finite; its largest |z| is sqrt(2·53·ln 2) ≈ 8.6.
        let u1 = ((self.next_u64() >> 11) + 1) as f64 * TWO_POW_M53;
        let u2 = (self.next_u64() >> 11) as f64 * TWO_POW_M53;
        let r = (-2.0 * libm::log(u1)).sqrt();
        let theta = TWO_PI * u2;
        ((r * libm::cos(theta)) as f32, (r * libm::sin(theta)) as f32)
    }

    /// `n` values of N(0, 1); consecutive calls continue one stream (chunking-independent).
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        if n > 0 {
            if let Some(z) = self.spare.take() {
                out.push(z);
            }
        }
        while out.len() + 2 <= n {
            let (z0, z1) = self.pair();
            out.push(z0);
            out.push(z1);
        }
        if out.len() < n {
            let (z0, z1) = self.pair();
            out.push(z0);
            self.spare = Some(z1);
        }
        out
    }
}

impl NoiseSource for NoiseRng {
    fn randn(&mut self, n: usize) -> Vec<f32> {
        NoiseRng::randn(self, n)
    }
}

/// The seed of candidate `k` (0-based) of a `--count N` run started with `seed`: `seed + k`.
pub fn candidate_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_add(k as u64)
}

/// Initial latents for one image: `shape.product()` values of N(0, 1) from `NoiseRng::new(seed)`,
/// in row-major order of `shape` (e.g. `[1, 4, H/8, W/8]`). Not yet scaled by the scheduler's
/// `init_noise_sigma`; the caller multiplies.
pub fn latents(seed: u64, shape: &[usize]) -> Vec<f32> {
    NoiseRng::new(seed).randn(shape.iter().product())
}

/// Initial latents for `count` candidates batched along the first axis: candidate `k` is
/// `latents(candidate_seed(seed, k), shape)`, so `shape` is one candidate's shape. (Equal to the
/// first draw of `BatchNoise::new(seed, count)`; use that to keep the streams for the steps.)
pub fn batch_latents(seed: u64, count: usize, shape: &[usize]) -> Vec<f32> {
    let per: usize = shape.iter().product();
    let mut out = Vec::with_capacity(per * count);
    for k in 0..count {
        out.extend(latents(candidate_seed(seed, k), shape));
    }
    out
}

/// Noise for a batch of candidates: one [`NoiseRng`] per candidate, candidate `k` seeded with
/// `candidate_seed(seed, k)`. A request for `n` values is split into `count` equal chunks, chunk
/// `k` drawn from stream `k`, so a batched candidate receives exactly the noise it would alone.
/// As in diffusers (one `generator` for everything), each candidate's stream first gives its
/// initial latents (or img2img noise), then the schedulers' per-step noise: draw the latents from
/// the same `BatchNoise` that is then handed to `Scheduler::step`.
#[derive(Clone, Debug)]
pub struct BatchNoise {
    rngs: Vec<NoiseRng>,
}

impl BatchNoise {
    /// Streams for candidates `seed, seed+1, …, seed+count-1` (`count` 0 is treated as 1).
    pub fn new(seed: u64, count: usize) -> BatchNoise {
        let rngs = (0..count.max(1))
            .map(|k| NoiseRng::new(candidate_seed(seed, k)))
            .collect();
        BatchNoise { rngs }
    }

    /// How many candidate streams this holds.
    pub fn count(&self) -> usize {
        self.rngs.len()
    }
}

impl NoiseSource for BatchNoise {
    /// `n` must be a multiple of the candidate count (it is the batch's latent length); any
    /// remainder is drawn from the last stream.
    fn randn(&mut self, n: usize) -> Vec<f32> {
        let count = self.rngs.len();
        let per = n / count;
        let mut out = Vec::with_capacity(n);
        for (k, rng) in self.rngs.iter_mut().enumerate() {
            let take = if k + 1 == count {
                n - per * (count - 1)
            } else {
                per
            };
            out.extend(rng.randn(take));
        }
        out
    }
}

/// A fixed list of values handed out in order (tests, and replaying another implementation's
/// noise); past the end it yields zeros.
#[derive(Clone, Debug, Default)]
pub struct ListNoise {
    values: Vec<f32>,
    pos: usize,
}

impl ListNoise {
    /// Serves `values` in order.
    pub fn new(values: Vec<f32>) -> ListNoise {
        ListNoise { values, pos: 0 }
    }
}

impl NoiseSource for ListNoise {
    fn randn(&mut self, n: usize) -> Vec<f32> {
        let end = (self.pos + n).min(self.values.len());
        let mut out = self.values[self.pos..end].to_vec();
        out.resize(n, 0.0);
        self.pos = end;
        out
    }
}
