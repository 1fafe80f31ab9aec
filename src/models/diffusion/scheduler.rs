//! Diffusion schedulers behind one small trait: which timesteps the UNet sees, how its input is
//! scaled, and how one model output moves the latent to the next noise level.
//!
//! Owns the [`Scheduler`] trait, [`SchedulerKind`] (the CLI names), [`SchedulerError`], the
//! constructor [`new_scheduler`] and the img2img start rule [`img2img_start`]. The families live
//! in the submodules: `euler` (Euler, Euler ancestral, SD-Turbo), `dpm` (DPM++ 2M Karras),
//! `ddim` (DDIM, LCM); `config` reads diffusers' `scheduler_config.json` and builds the tables.
//! Every formula follows diffusers 0.42's scheduler of the same name (the papers are cited in
//! each submodule); `tests/fixtures/make_scheduler_fixtures.py` is an independent numpy port that
//! checks it.
//!
//! Numerics: schedule math (σs, ᾱs, solver coefficients) in f64 from f32-rounded tables, the
//! latent state in f32 with diffusers' element-wise operation order; transcendentals from `libm`,
//! so a schedule is bit-identical native and in wasm32. Where diffusers evaluates a scalar
//! coefficient as an f32 tensor we evaluate it in f64 and round once: results differ from
//! diffusers' by an f32 ulp or so per step, far below the UNet's own error.
//!
//! Use (txt2img): `x = latents · init_noise_sigma`; for `i in start_index()..timesteps().len()`:
//! `input = x.clone(); scale_model_input(&mut input, i)`, run the UNet at `timesteps()[i]`
//! (with CFG), `x = step(&eps, i, &x, &mut noise)`. img2img: build with `strength < 1`, then
//! `x = add_noise(&encoded, &fresh_noise, start_index())` and the same loop.

mod config;
mod ddim;
mod dpm;
mod euler;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use super::noise::NoiseSource;
pub use config::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
pub use ddim::AlphaScheduler;
pub use dpm::DpmSolverMultistep;
pub use euler::EulerScheduler;

/// A bad scheduler option or configuration, or a call that does not fit the schedule.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum SchedulerError {
    #[error(
        "unknown scheduler {0:?} (expected one of: euler, euler_a, dpmpp_2m, ddim, lcm, turbo)"
    )]
    UnknownScheduler(String),
    #[error("invalid number of steps: {0}")]
    InvalidSteps(String),
    #[error("invalid strength: {0}")]
    InvalidStrength(String),
    #[error("invalid scheduler config: {0}")]
    InvalidConfig(String),
    #[error("step index {index} is outside the schedule of {len} steps")]
    StepIndex { index: usize, len: usize },
    #[error("tensor length mismatch: {expected} values expected, {got} given")]
    Length { expected: usize, got: usize },
}

/// One diffusion sampler over a fixed schedule. Step indices count from 0 over `timesteps()`.
pub trait Scheduler: Send {
    /// The values fed to the UNet's time embedding, in order (integers except Euler "linspace").
    fn timesteps(&self) -> &[f64];
    /// The σ of each step plus the final one (σ-based schedulers); empty for DDIM/LCM.
    fn sigmas(&self) -> &[f32] {
        &[]
    }
    /// The first step to run: 0 for txt2img, later for img2img (`strength` < 1).
    fn start_index(&self) -> usize;
    /// Multiply the initial N(0, 1) latents by this (txt2img).
    fn init_noise_sigma(&self) -> f32;
    /// Scales the UNet input of step `step_index` in place (Euler: ÷√(σ²+1); others: none).
    fn scale_model_input(
        &self,
        sample: &mut [f32],
        step_index: usize,
    ) -> Result<(), SchedulerError>;
    /// The latent after step `step_index`, from the (guided) model output at that step. Stateful
    /// (DPM++ keeps the previous output): call once per step, in order. Ancestral schedulers draw
    /// `sample.len()` values from `noise` per call.
    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &[f32],
        noise: &mut dyn NoiseSource,
    ) -> Result<Vec<f32>, SchedulerError>;
    /// The denoised estimate x₀ that the model output at step `step_index` implies for `sample`
    /// (the latent before `scale_model_input`): what a per-step preview shows.
    fn predicted_original(
        &self,
        model_output: &[f32],
        step_index: usize,
        sample: &[f32],
    ) -> Result<Vec<f32>, SchedulerError> {
        check_step(step_index, self.timesteps().len())?;
        check_len(sample.len(), model_output.len())?;
        Ok(self.x0(model_output, step_index, sample))
    }
    /// [`Scheduler::predicted_original`] on arguments already checked.
    fn x0(&self, model_output: &[f32], step_index: usize, sample: &[f32]) -> Vec<f32>;
    /// Noises clean latents to the level of step `step_index` (img2img, inpainting).
    fn add_noise(
        &self,
        original: &[f32],
        noise: &[f32],
        step_index: usize,
    ) -> Result<Vec<f32>, SchedulerError>;
}

/// The schedulers offered on the command line and in the JS API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// `euler`: Euler (Karras et al. Algorithm 2, no churn).
    Euler,
    /// `euler_a`: Euler ancestral.
    EulerAncestral,
    /// `dpmpp_2m`: DPM-Solver++(2M) with Karras σs.
    DpmPp2m,
    /// `ddim`: DDIM, η = 0.
    Ddim,
    /// `lcm`: latent consistency (LCM-distilled UNets or LCM-LoRA).
    Lcm,
    /// `turbo`: SD-Turbo, Euler ancestral with trailing spacing (1–4 steps, first t = 999).
    Turbo,
}

impl SchedulerKind {
    /// All kinds, in the order of the CLI help.
    pub const ALL: [SchedulerKind; 6] = [
        SchedulerKind::Euler,
        SchedulerKind::EulerAncestral,
        SchedulerKind::DpmPp2m,
        SchedulerKind::Ddim,
        SchedulerKind::Lcm,
        SchedulerKind::Turbo,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerAncestral => "euler_a",
            SchedulerKind::DpmPp2m => "dpmpp_2m",
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::Lcm => "lcm",
            SchedulerKind::Turbo => "turbo",
        }
    }

    /// The timestep spacing this kind uses with `cfg`: the config's, else diffusers' class default
    /// (turbo always "trailing").
    pub fn spacing(self, cfg: &SchedulerConfig) -> TimestepSpacing {
        match self {
            SchedulerKind::Turbo => TimestepSpacing::Trailing,
            SchedulerKind::Ddim | SchedulerKind::Lcm => {
                cfg.timestep_spacing.unwrap_or(TimestepSpacing::Leading)
            }
            _ => cfg.timestep_spacing.unwrap_or(TimestepSpacing::Linspace),
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = SchedulerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase();
        SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name() == key)
            .ok_or_else(|| SchedulerError::UnknownScheduler(s.to_string()))
    }
}

/// diffusers' img2img `get_timesteps`: of `steps` steps, run the last `min(int(steps·strength),
/// steps)`; returns the index of the first one (`t_start`; every scheduler here has order 1).
/// `strength` must be in [0, 1] and leave at least one step.
pub fn img2img_start(steps: usize, strength: f64) -> Result<usize, SchedulerError> {
    if !(0.0..=1.0).contains(&strength) {
        return Err(SchedulerError::InvalidStrength(format!(
            "must be in [0, 1], got {strength}"
        )));
    }
    // Python's int(num_inference_steps * strength): the f64 product truncated.
    let init = ((steps as f64 * strength) as usize).min(steps);
    if init == 0 {
        return Err(SchedulerError::InvalidStrength(format!(
            "{strength} × {steps} steps leaves no step to run"
        )));
    }
    Ok(steps - init)
}

/// The scheduler `kind` for `steps` steps, configured from the model's `scheduler_config.json`.
/// `strength` is 1 for txt2img; below 1 (img2img) the schedule starts at [`img2img_start`] (LCM
/// instead shortens its distillation schedule and runs all `steps`, as diffusers' LCM img2img).
pub fn new_scheduler(
    kind: SchedulerKind,
    cfg: &SchedulerConfig,
    steps: usize,
    strength: f64,
) -> Result<Box<dyn Scheduler>, SchedulerError> {
    cfg.validate()?;
    let train = cfg.num_train_timesteps;
    if steps == 0 || steps > train {
        return Err(SchedulerError::InvalidSteps(format!(
            "must be in 1..={train}, got {steps}"
        )));
    }
    if kind == SchedulerKind::Turbo && steps > 4 {
        return Err(SchedulerError::InvalidSteps(format!(
            "turbo is distilled for 1-4 steps, got {steps}"
        )));
    }
    if !(0.0..=1.0).contains(&strength) {
        return Err(SchedulerError::InvalidStrength(format!(
            "must be in [0, 1], got {strength}"
        )));
    }
    let spacing = kind.spacing(cfg);
    let sched: Box<dyn Scheduler> = match kind {
        SchedulerKind::Lcm => Box::new(AlphaScheduler::lcm(cfg, steps, strength)?),
        SchedulerKind::Euler | SchedulerKind::EulerAncestral | SchedulerKind::Turbo => {
            let ancestral = kind != SchedulerKind::Euler;
            let mut s = EulerScheduler::new(cfg, spacing, steps, ancestral)?;
            s.set_start(img2img_start(steps, strength)?);
            Box::new(s)
        }
        SchedulerKind::DpmPp2m => {
            let mut s = DpmSolverMultistep::new(cfg, steps)?;
            s.set_start(img2img_start(steps, strength)?);
            Box::new(s)
        }
        SchedulerKind::Ddim => {
            let mut s = AlphaScheduler::ddim(cfg, spacing, steps)?;
            s.set_start(img2img_start(steps, strength)?);
            Box::new(s)
        }
    };
    Ok(sched)
}

/// `StepIndex` unless `index < len`.
fn check_step(index: usize, len: usize) -> Result<(), SchedulerError> {
    if index < len {
        Ok(())
    } else {
        Err(SchedulerError::StepIndex { index, len })
    }
}

/// `Length` unless the two tensors have the same length.
fn check_len(expected: usize, got: usize) -> Result<(), SchedulerError> {
    if expected == got {
        Ok(())
    } else {
        Err(SchedulerError::Length { expected, got })
    }
}
