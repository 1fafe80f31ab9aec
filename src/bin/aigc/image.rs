//! `aigc image`: txt2img on a diffusers folder, with a progress line on stderr, PNGs out, and
//! an optional JSON line of timings on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use aigc::gpu::Gpu;
use aigc::kernels::Precision;
use aigc::models::diffusion::imageio::{decode_png, encode_png, read_npy_f32, write_npy_f32};
use aigc::models::diffusion::nn::WeightQuant;
use aigc::models::diffusion::pipeline::{ImageRequest, SdPipeline};
use aigc::models::diffusion::scheduler::SchedulerKind;
use aigc::source::{DirFolder, FileSource};
use aigc::{Error, Result};
use web_time::Instant;

#[derive(clap::Args)]
pub struct ImageArgs {
    /// A diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/),
    /// or a single-file checkpoint in the original layout (.safetensors, or stable-diffusion.cpp's
    /// .gguf with pre-quantized weights).
    #[arg(long)]
    model: PathBuf,
    /// With a single-file --model: a folder giving its tokenizer (tokenizer/vocab.json +
    /// merges.txt) and, where present, unet/ vae/ text_encoder/ configs, scheduler/ and taesd/
    /// (default: the checkpoint's own directory). Configs it lacks are read from the shapes.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    prompt: String,
    /// Negative prompt (the unconditional text of classifier-free guidance).
    #[arg(long, default_value = "")]
    negative: String,
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Guidance scale; 1 or less turns guidance off.
    #[arg(long, default_value_t = 7.5)]
    cfg: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// WxH in pixels, e.g. 512x512.
    #[arg(long, default_value = "512x512")]
    size: String,
    /// euler | euler_a | dpmpp_2m | ddim | lcm | turbo
    #[arg(long, default_value = "euler")]
    scheduler: String,
    /// How the UNet and text-encoder weights are kept on the GPU: f32 | q8_0 | q4_0 (default:
    /// f32, or for a .gguf the type most of its UNet linear weights are stored in).
    #[arg(long)]
    quant: Option<String>,
    /// How the UNet stores its activations between kernels: f32 | f16 (f16 needs an adapter
    /// with shader-f16; the arithmetic inside each kernel stays f32).
    #[arg(long, default_value = "f32")]
    activations: String,
    /// Candidates, seeds S, S+1, …; written as OUT-0.png, OUT-1.png, … when more than one.
    #[arg(long, default_value_t = 1)]
    count: usize,
    #[arg(long)]
    out: PathBuf,
    /// img2img: a PNG of the requested size to start from.
    #[arg(long)]
    init: Option<PathBuf>,
    /// img2img: how much of the schedule to run from --init (0 < S ≤ 1).
    #[arg(long, default_value_t = 0.8)]
    strength: f64,
    /// Inpainting (with --init): a PNG of the same size, white where to repaint.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Initial noise: a float32 .npy of shape [count, 4, H/8, W/8] (diffusers' `latents=`).
    #[arg(long)]
    latents: Option<PathBuf>,
    /// Also write the final latents (before the VAE) as a float32 .npy.
    #[arg(long)]
    save_latents: Option<PathBuf>,
    /// Write a TAESD preview of each candidate's denoised estimate after every step to
    /// DIR/step-NN[-k].png (needs a TAESD decoder: MODEL/taesd/, or --taesd).
    #[arg(long)]
    previews: Option<PathBuf>,
    /// A TAESD decoder for --previews: a diffusers AutoencoderTiny folder, or a folder holding
    /// taesd_decoder.safetensors (default: MODEL/taesd/ when present).
    #[arg(long)]
    taesd: Option<PathBuf>,
    /// After generating, print one line of JSON with timings.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::InvalidOption(format!("size {s:?}: expected WxH, e.g. 512x512"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?))
}

/// `dir/name.png` → `dir/name-k.png`.
fn numbered(out: &Path, k: usize) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let ext = out.extension().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "png".into());
    out.with_file_name(format!("{stem}-{k}.{ext}"))
}

fn read_png(p: &Path) -> Result<aigc::models::diffusion::imageio::Rgb8> {
    let bytes = std::fs::read(p).map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
    decode_png(&bytes).map_err(|e| Error::InvalidOption(format!("{}: {e}", p.display())))
}

pub async fn run(a: ImageArgs) -> Result<()> {
    let t0 = Instant::now();
    let (width, height) = parse_size(&a.size)?;
    let scheduler: SchedulerKind = a.scheduler.parse()?;
    let activations = Precision::parse(&a.activations)?;
    let gpu = Gpu::get().await?;
    let pipe_gpu = gpu.clone();
    if activations.is_f16() && !gpu.report.shader_f16 {
        // Before loading gigabytes: the pipeline would refuse it at the first step.
        return Err(Error::InvalidOption(format!("--activations f16 needs the shader-f16 feature, which {} does not have", gpu.report.name)));
    }
    let mut pipe = match a.model.is_file() {
        true => {
            let aux = a.config.clone().or_else(|| a.model.parent().map(Path::to_path_buf)).unwrap_or_default();
            let src = FileSource::open(&a.model)?;
            let quant = a.quant.as_deref().map(WeightQuant::parse).transpose()?;
            let label = a.model.display().to_string();
            SdPipeline::load_single(src, &label, &DirFolder(aux), gpu, quant).await?
        }
        false => {
            let quant = WeightQuant::parse(a.quant.as_deref().unwrap_or("f32"))?;
            SdPipeline::load(&DirFolder(a.model.clone()), gpu, quant).await?
        }
    };
    let quant = pipe.quant;
    if let Some(dir) = &a.taesd {
        pipe.load_taesd(&DirFolder(dir.clone()), "").await?;
    }
    if a.previews.is_some() && pipe.taesd.is_none() {
        return Err(Error::InvalidOption(format!(
            "--previews needs a TAESD decoder: none in {}/taesd/; give one with --taesd",
            a.model.display()
        )));
    }
    if let Some(dir) = &a.previews {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    }
    eprintln!(
        "loaded {} in {:.1} s: {:.1} MiB of weights on the GPU ({:?})",
        a.model.display(),
        t0.elapsed().as_secs_f64(),
        pipe.gpu_bytes as f64 / 1048576.0,
        quant
    );
    let mut req = ImageRequest::new(&a.prompt);
    req.negative = a.negative.clone();
    req.steps = a.steps;
    req.guidance = a.cfg;
    req.seed = a.seed;
    req.width = width;
    req.height = height;
    req.scheduler = scheduler;
    req.count = a.count;
    req.strength = a.strength;
    req.init = a.init.as_deref().map(read_png).transpose()?;
    req.mask = a.mask.as_deref().map(read_png).transpose()?;
    req.previews = a.previews.is_some();
    req.activations = activations;
    if let Some(p) = &a.latents {
        let bytes = std::fs::read(p).map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
        let npy = read_npy_f32(&bytes)?;
        let [c, h, w] = pipe.latent_shape(width, height)?;
        if npy.shape != [a.count, c, h, w] {
            return Err(Error::InvalidOption(format!(
                "{}: shape {:?}, this run needs [{}, {c}, {h}, {w}]",
                p.display(),
                npy.shape,
                a.count
            )));
        }
        req.latents = Some(npy.data);
    }
    let mut err = std::io::stderr();
    let mut preview_error = None;
    let mut reserved = 0u64;
    let res = pipe
        .generate(&req, &mut |s| {
            reserved = reserved.max(pipe_gpu.memory_reserved());
            if let Some(dir) = &a.previews {
                for (k, img) in s.previews.iter().enumerate() {
                    let name = if s.previews.len() == 1 { format!("step-{:02}.png", s.step) } else { format!("step-{:02}-{k}.png", s.step) };
                    let path = dir.join(name);
                    if let Err(e) = encode_png(img).and_then(|b| std::fs::write(&path, b).map_err(|e| Error::Io(format!("{}: {e}", path.display())))) {
                        preview_error = Some(e);
                        return false;
                    }
                }
            }
            let per = s.seconds / s.step as f64;
            let filled = s.step * 20 / s.steps.max(1);
            let _ = write!(err, "\r[{}{}] step {}/{}, {per:.2} s/step", "#".repeat(filled), "-".repeat(20 - filled), s.step, s.steps);
            if s.step == s.steps {
                let _ = writeln!(err);
            }
            true
        })
        .await;
    // A preview that could not be written stopped the run: report that, not the cancellation.
    let res = res.map_err(|e| preview_error.unwrap_or(e))?;
    for (k, img) in res.images.iter().enumerate() {
        let path = if res.images.len() == 1 { a.out.clone() } else { numbered(&a.out, k) };
        std::fs::write(&path, encode_png(img)?).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        eprintln!("wrote {} (seed {})", path.display(), a.seed.wrapping_add(k as u64));
    }
    if let Some(p) = &a.save_latents {
        let [c, h, w] = pipe.latent_shape(width, height)?;
        std::fs::write(p, write_npy_f32(&[a.count, c, h, w], &res.latents))
            .map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "seconds_per_step": res.seconds_per_step,
                "total_seconds": t0.elapsed().as_secs_f64(),
                "generate_seconds": res.total_seconds,
                "width": width,
                "height": height,
                "steps": a.steps,
                "count": a.count,
                "gpu_weight_bytes": pipe.gpu_bytes,
                "activations": activations.name(),
                "gpu_reserved_bytes_denoising": reserved,
            })
        );
    }
    Ok(())
}
