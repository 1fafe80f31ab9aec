//! Token sampling: turns one step's logits into the next token id.
//!
//! Owns [`SamplerConfig`] (llama.cpp's option names and defaults), its validation, and [`Sampler`],
//! which applies llama.cpp's chain — repetition penalty → top-k → top-p → min-p → temperature →
//! softmax → draw — with a seeded RNG of our own, so that a seed gives the same tokens natively and
//! in wasm32.
//!
//! Determinism, the one trap of this module: for equal logits, every platform must pick the same
//! token. Hence:
//! * candidates are ordered by (logit desc, id asc) with `f32::total_cmp`: a total order over unique
//!   keys, so the result does not depend on sort stability or on the sort algorithm;
//! * probabilities are computed in f64, summed in that order, with our own `exp` built from `+ - * /`
//!   only (IEEE-exact everywhere), because `f64::exp` comes from the platform's libm (glibc natively,
//!   a Rust port of musl in wasm32) and may differ in the last bit;
//! * no HashMap (its iteration order is randomized per process);
//! * the RNG is xoshiro256** seeded by SplitMix64, written here: `rand`'s algorithms and streams may
//!   change between versions, and a golden test pins ours.

use thiserror::Error;

/// Sampling options, with llama.cpp's meaning and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest prefix whose probability mass reaches p; 1 = off.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` × the top token's; 0 = off.
    pub min_p: f32,
    /// Penalty on tokens seen in the last `repeat_last_n` ids of the history; 1 = off.
    pub repeat_penalty: f32,
    /// How many of the most recent history ids the penalty looks at; 0 = off.
    pub repeat_last_n: usize,
    /// RNG seed; the same seed and logits give the same tokens on every platform.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// An out-of-range sampling option.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum SamplingError {
    #[error("invalid sampling option: {0}")]
    InvalidOption(String),
}

/// Options a caller may leave unset (CLI flags, JS request fields); `None` keeps the default.
#[derive(Clone, Debug, Default)]
pub struct SamplerOverrides {
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub seed: Option<u64>,
}

impl SamplerConfig {
    /// The defaults with the given options applied.
    pub fn with(o: &SamplerOverrides) -> Self {
        let d = SamplerConfig::default();
        SamplerConfig {
            temperature: o.temperature.unwrap_or(d.temperature),
            top_k: o.top_k.unwrap_or(d.top_k),
            top_p: o.top_p.unwrap_or(d.top_p),
            min_p: o.min_p.unwrap_or(d.min_p),
            repeat_penalty: o.repeat_penalty.unwrap_or(d.repeat_penalty),
            seed: o.seed.unwrap_or(d.seed),
            ..d
        }
    }

    /// Deterministic argmax decoding (temperature 0), other options at their defaults.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Rejects NaN/infinite/negative values and ranges llama.cpp would misbehave on.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let bad = |msg: String| Err(SamplingError::InvalidOption(msg));
        // `!(x >= 0)` rather than `x < 0`: the negated form also rejects NaN.
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be a finite number >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad(format!(
                "repeat_penalty must be a finite number > 0, got {}",
                self.repeat_penalty
            ));
        }
        Ok(())
    }
}

/// xoshiro256** (Blackman & Vigna), its state filled by SplitMix64 so any seed, even 0, is usable.
/// Shared with the diffusion noise (`models::diffusion::noise`).
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [splitmix(), splitmix(), splitmix(), splitmix()],
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) from the top 53 bits: exact in f64, so no rounding up to 1.0.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// e^x for x <= 0, from IEEE `+ - * /` only, so bit-identical on every platform (see the header).
/// Relative error ~1e-16, far below anything that matters for sampling.
fn exp_neg(x: f64) -> f64 {
    if x.is_nan() || x < -700.0 {
        return 0.0; // also -inf; e^-700 ≈ 1e-304 is 0 for any draw
    }
    if x >= 0.0 {
        return 1.0; // only x == 0 reaches here: callers subtract the maximum first
    }
    // x = k·ln2 + r with |r| <= ln2/2; ln2 split in two (fdlibm's constants, given by their bits)
    // so that k·LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 0.6931471803691238
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.9082149292705877e-10
    let k = (x * std::f64::consts::LOG2_E + 0.5).floor();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series to r^17/17!: the remainder is < 1e-19 for |r| <= 0.35.
    let mut term_sum = 1.0;
    for n in (1..=17).rev() {
        term_sum = 1.0 + term_sum * r / n as f64;
    }
    // k is in [-1010, 0]: 2^k is a normal f64, built from its exponent bits.
    let two_k = f64::from_bits(((1023 + k as i64) as u64) << 52);
    term_sum * two_k
}

/// Draws token ids from logits; one per model step. Holds the RNG, so keep one per generation.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    /// Reused between calls: (id, logit) pairs, then the surviving candidates.
    cands: Vec<(u32, f32)>,
    /// Reused between calls: the distinct ids of the penalty window.
    seen: Vec<u32>,
}

impl Sampler {
    /// Validates `cfg` and seeds the RNG from `cfg.seed`.
    pub fn new(cfg: SamplerConfig) -> Result<Sampler, SamplingError> {
        cfg.validate()?;
        let rng = Rng::new(cfg.seed);
        Ok(Sampler {
            cfg,
            rng,
            cands: Vec::new(),
            seen: Vec::new(),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token. `history` is every token so far (prompt and generated), oldest first.
    ///
    /// Never panics: NaN logits count as -inf, +inf as the largest finite f32; if no token has a
    /// finite logit the lowest id wins (0 for empty `logits`).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.load_penalized(logits, history);
        let greedy = self.cfg.temperature == 0.0;
        if !greedy {
            // Draw even when one candidate is left, so that the RNG stream advances once per token
            // whatever the distribution (as llama.cpp's dist sampler does).
            let u = self.rng.next_f64();
            if let Some(id) = self.draw(u) {
                return id;
            }
        }
        argmax(&self.cands)
    }

    /// Fills `cands` with (id, logit), NaN mapped to -inf and the repetition penalty applied.
    fn load_penalized(&mut self, logits: &[f32], history: &[u32]) {
        self.cands.clear();
        self.cands.extend(logits.iter().enumerate().map(|(i, &l)| {
            let l = if l.is_nan() {
                f32::NEG_INFINITY
            } else {
                l.min(f32::MAX)
            };
            (i as u32, l)
        }));
        let penalty = self.cfg.repeat_penalty;
        if penalty == 1.0 || self.cfg.repeat_last_n == 0 {
            return;
        }
        let window = &history[history.len().saturating_sub(self.cfg.repeat_last_n)..];
        // Each distinct id is penalized once, however often it occurs (llama.cpp's rule).
        self.seen.clear();
        self.seen.extend_from_slice(window);
        self.seen.sort_unstable();
        self.seen.dedup();
        for &id in &self.seen {
            if let Some(c) = self.cands.get_mut(id as usize) {
                // Dividing a negative logit would raise it: llama.cpp multiplies those instead.
                // A penalty below 1 can push f32::MAX to +inf: clamp, or max - max is NaN below.
                let l = if c.1 <= 0.0 {
                    c.1 * penalty
                } else {
                    c.1 / penalty
                };
                c.1 = l.min(f32::MAX);
            }
        }
    }

    /// top-k → top-p → min-p → temperature → softmax → pick with `u` in [0, 1).
    /// `None` when no candidate has a finite logit.
    fn draw(&mut self, u: f64) -> Option<u32> {
        let cands = &mut self.cands;
        cands.retain(|c| c.1 > f32::NEG_INFINITY);
        if cands.is_empty() {
            return None;
        }
        // Unique keys (ids differ) make this order total: any sort gives the same result.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = self.cfg.top_k;
        if k > 0 && k < cands.len() {
            cands.select_nth_unstable_by(k - 1, order);
            cands.truncate(k);
        }
        cands.sort_unstable_by(order);

        let max = cands[0].1 as f64;
        // top-p and min-p look at the distribution at temperature 1, as in llama.cpp.
        let top_p = self.cfg.top_p as f64;
        if top_p < 1.0 {
            let total: f64 = cands.iter().map(|c| exp_neg(c.1 as f64 - max)).sum();
            let mut cum = 0.0;
            let mut keep = cands.len();
            for (i, c) in cands.iter().enumerate() {
                cum += exp_neg(c.1 as f64 - max) / total;
                if cum >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            cands.truncate(keep);
        }
        let min_p = self.cfg.min_p as f64;
        if min_p > 0.0 {
            // p_i >= min_p · p_max  ⇔  e^(l_i - l_max) >= min_p; the top token always survives.
            cands.retain(|c| exp_neg(c.1 as f64 - max) >= min_p);
        }

        let inv_t = 1.0 / self.cfg.temperature as f64;
        let total: f64 = cands
            .iter()
            .map(|c| exp_neg((c.1 as f64 - max) * inv_t))
            .sum();
        let target = u * total;
        let mut cum = 0.0;
        for c in cands.iter() {
            cum += exp_neg((c.1 as f64 - max) * inv_t);
            if target < cum {
                return Some(c.0);
            }
        }
        // Only reachable through rounding at the very top of [0, 1): take the last candidate.
        cands.last().map(|c| c.0)
    }
}

/// Highest logit, ties to the lowest id (llama.cpp's greedy); 0 if `cands` is empty.
fn argmax(cands: &[(u32, f32)]) -> u32 {
    let mut best: Option<(u32, f32)> = None;
    for &(id, l) in cands {
        match best {
            Some((_, b)) if l <= b => {}
            _ => best = Some((id, l)),
        }
    }
    best.map_or(0, |b| b.0)
}
