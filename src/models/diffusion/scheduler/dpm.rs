//! DPM-Solver++(2M) with Karras σs: the multistep second-order solver in data (x₀) prediction.
//!
//! Formulas: Lu et al. 2022, "DPM-Solver++" (<https://arxiv.org/abs/2211.01095>), Algorithm 2
//! (multistep, midpoint form), with the σ schedule of Karras et al. 2022 eq. 5, ρ = 7
//! (<https://arxiv.org/abs/2206.00364>). Code path: diffusers 0.42 `DPMSolverMultistepScheduler`
//! with algorithm_type "dpmsolver++", solver_order 2, solver_type "midpoint",
//! use_karras_sigmas true, lower_order_final true, final_sigmas_type "zero".
//!
//! In this (VP) parametrisation the latent is x = α_t·x₀ + σ_t·ε with α_t = 1/√(σ²+1),
//! σ_t = σ·α_t, λ = ln α_t − ln σ_t: so `init_noise_sigma` is 1 and the UNet input is unscaled.
//!
//! Traps:
//! * Karras σs are made in f64 between the table's σ_min and σ_max, then mapped back to (rounded,
//!   half-to-even) training timesteps for the UNet; consecutive ones may coincide for many steps.
//! * The final σ is 0, so λ = +∞ and h = ∞ at the last step: the second-order update would be
//!   0·∞. diffusers therefore always takes a first-order step last (`lower_order_final`, forced by
//!   final_sigmas_type "zero"), which returns x₀ exactly; the first step is first-order too (no
//!   history), also after an img2img start.
//! * Scalars (α, σ, λ, h, e^{−h}) in f64 from the f32 σs; diffusers evaluates them as f32 tensors.

use super::config::{sigma_table, sigma_to_t, PredictionType};
use super::{check_len, check_step, NoiseSource, Scheduler, SchedulerConfig, SchedulerError};

/// DPM++ 2M Karras.
#[derive(Clone, Debug)]
pub struct DpmSolverMultistep {
    timesteps: Vec<f64>,
    /// Karras σs (f32) plus the final 0.
    sigmas: Vec<f32>,
    prediction: PredictionType,
    /// The x₀ prediction of the previous step (the "2M" history), if any.
    prev_x0: Option<Vec<f32>>,
    start: usize,
}

/// (α_t, σ_t, λ) of a σ ≥ 0; λ = +∞ at σ = 0.
fn alpha_sigma_lambda(sigma: f32) -> (f64, f64, f64) {
    let s = sigma as f64;
    let alpha = 1.0 / (s * s + 1.0).sqrt();
    let sig = s * alpha;
    (alpha, sig, libm::log(alpha) - libm::log(sig))
}

impl DpmSolverMultistep {
    /// diffusers' `set_timesteps(steps)` with `use_karras_sigmas`.
    pub fn new(cfg: &SchedulerConfig, steps: usize) -> Result<DpmSolverMultistep, SchedulerError> {
        let table = sigma_table(&cfg.alphas_cumprod());
        // numpy's np.log over the f32 table gives f32 values: round ours the same way.
        let log_sigmas: Vec<f64> = table
            .iter()
            .map(|&s| libm::log(s as f64) as f32 as f64)
            .collect();
        let sigma_min = table.first().copied().unwrap_or(0.0) as f64;
        let sigma_max = table.last().copied().unwrap_or(0.0) as f64;
        let rho = 7.0;
        let min_inv = libm::pow(sigma_min, 1.0 / rho);
        let max_inv = libm::pow(sigma_max, 1.0 / rho);
        let karras: Vec<f64> = super::config::linspace(0.0, 1.0, steps)
            .into_iter()
            .map(|r| libm::pow(max_inv + r * (min_inv - max_inv), rho))
            .collect();
        let timesteps: Vec<f64> =
            if cfg.beta_schedule == super::config::BetaSchedule::SquaredcosCapV2 {
                // diffusers leaves the cosine schedule's timesteps fractional.
                karras.iter().map(|&s| sigma_to_t(s, &log_sigmas)).collect()
            } else {
                karras
                    .iter()
                    .map(|&s| sigma_to_t(s, &log_sigmas).round_ties_even())
                    .collect()
            };
        let mut sigmas: Vec<f32> = karras.iter().map(|&s| s as f32).collect();
        sigmas.push(0.0);
        Ok(DpmSolverMultistep {
            timesteps,
            sigmas,
            prediction: cfg.prediction_type,
            prev_x0: None,
            start: 0,
        })
    }

    pub(super) fn set_start(&mut self, start: usize) {
        self.start = start;
    }
}

impl DpmSolverMultistep {
    /// convert_model_output: the data prediction x₀ (f32 element-wise as diffusers).
    fn data_prediction(&self, model_output: &[f32], step_index: usize, sample: &[f32]) -> Vec<f32> {
        let (alpha_s0, sigma_s0, _) = alpha_sigma_lambda(self.sigmas[step_index]);
        let (a, s) = (alpha_s0 as f32, sigma_s0 as f32);
        match self.prediction {
            PredictionType::VPrediction => model_output.iter().zip(sample).map(|(&m, &x)| a * x - s * m).collect(),
            _ => model_output.iter().zip(sample).map(|(&m, &x)| (x - s * m) / a).collect(),
        }
    }
}

impl Scheduler for DpmSolverMultistep {
    fn x0(&self, model_output: &[f32], step_index: usize, sample: &[f32]) -> Vec<f32> {
        self.data_prediction(model_output, step_index, sample)
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    fn start_index(&self) -> usize {
        self.start
    }

    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    fn scale_model_input(
        &self,
        _sample: &mut [f32],
        step_index: usize,
    ) -> Result<(), SchedulerError> {
        check_step(step_index, self.timesteps.len())
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &[f32],
        _noise: &mut dyn NoiseSource,
    ) -> Result<Vec<f32>, SchedulerError> {
        let n = self.timesteps.len();
        check_step(step_index, n)?;
        check_len(sample.len(), model_output.len())?;
        let (_, sigma_s0, lambda_s0) = alpha_sigma_lambda(self.sigmas[step_index]);
        let x0 = self.data_prediction(model_output, step_index, sample);
        let last = step_index + 1 == n;
        let prev = self.prev_x0.take();
        let sigma_next = self.sigmas[step_index + 1];
        let out: Vec<f32> = match prev {
            _ if last && sigma_next == 0.0 => {
                // First order onto σ = 0: σ_t/σ_s·x − α_t(e^{−∞} − 1)·x₀ = 0·x + 1·x₀ = x₀.
                x0.clone()
            }
            Some(ref m1) if !last && step_index > 0 && m1.len() == x0.len() => {
                // Second order (midpoint): D0 = m0, D1 = (m0 − m1)/r0, r0 = h_{prev}/h.
                let (alpha_t, sigma_t, lambda_t) = alpha_sigma_lambda(sigma_next);
                let sigma_s1 = self.sigmas[step_index - 1];
                let (_, _, lambda_s1) = alpha_sigma_lambda(sigma_s1);
                let h = lambda_t - lambda_s0;
                let h0 = lambda_s0 - lambda_s1;
                let r0 = h0 / h;
                let c_x = (sigma_t / sigma_s0) as f32;
                let c0 = alpha_t * (libm::exp(-h) - 1.0);
                let (c0f, c1f) = (c0 as f32, (0.5 * c0) as f32);
                let inv_r0 = (1.0 / r0) as f32;
                x0.iter()
                    .zip(m1)
                    .zip(sample)
                    .map(|((&d0, &p), &x)| {
                        let d1 = inv_r0 * (d0 - p);
                        c_x * x - c0f * d0 - c1f * d1
                    })
                    .collect()
            }
            _ => {
                // First order (DPM-Solver++ 1 = DDIM in x₀ form): first step, or a last step
                // onto σ_min when the final σ is not 0 (never with our config).
                let (alpha_t, sigma_t, lambda_t) = alpha_sigma_lambda(sigma_next);
                let h = lambda_t - lambda_s0;
                let c_x = (sigma_t / sigma_s0) as f32;
                let c0 = (alpha_t * (libm::exp(-h) - 1.0)) as f32;
                x0.iter()
                    .zip(sample)
                    .map(|(&d0, &x)| c_x * x - c0 * d0)
                    .collect()
            }
        };
        self.prev_x0 = Some(x0);
        Ok(out)
    }

    /// x = α_t·x₀ + σ_t·ε at the σ of `step_index`.
    fn add_noise(
        &self,
        original: &[f32],
        noise: &[f32],
        step_index: usize,
    ) -> Result<Vec<f32>, SchedulerError> {
        check_step(step_index, self.timesteps.len())?;
        check_len(original.len(), noise.len())?;
        let (alpha, sigma, _) = alpha_sigma_lambda(self.sigmas[step_index]);
        let (a, s) = (alpha as f32, sigma as f32);
        Ok(original
            .iter()
            .zip(noise)
            .map(|(&o, &n)| a * o + s * n)
            .collect())
    }
}
