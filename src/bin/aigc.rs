//! `aigc`: the native command line over the same engine the browser runs.
//! inspect | text | perplexity | bench | image. Output formats are relied on by tests and other tools.

#[path = "aigc/image.rs"]
mod image;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use aigc::chat::Message;
use aigc::engine::{Engine, LoadOptions};
use aigc::generate::GenOptions;
use aigc::gguf::GgufFile;
use aigc::kernels::actquant::Numerics;
use aigc::kernels::stats;
use aigc::sampling::{SamplerConfig, SamplerOverrides};
use aigc::source::{read_gguf_header, FileSource};
use aigc::{Error, Result};
use clap::{Parser, Subcommand};
use web_time::Instant;

#[derive(Parser)]
#[command(name = "aigc", version, about = "Quantized text and image generation on WebGPU (wgpu natively)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Architecture, hyper-parameters, tensor types, tokenizer and template of a GGUF file.
    Inspect { model: PathBuf },
    /// Generate text, streamed to stdout.
    Text(TextArgs),
    /// Perplexity of a text file over consecutive windows.
    Perplexity {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 256)]
        ctx: usize,
        /// Matmul numerics: f32 (exact) or ggml (llama.cpp's 8-bit activations).
        #[arg(long, default_value = "f32")]
        numerics: String,
        #[arg(long)]
        json: bool,
    },
    /// Prefill and decode speed, dispatches per token, GEMV bandwidth.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 64)]
        gen_tokens: usize,
        /// Matmul numerics: f32 (exact) or ggml (llama.cpp's 8-bit activations).
        #[arg(long, default_value = "f32")]
        numerics: String,
        #[arg(long)]
        json: bool,
    },
    /// Text to image with a Stable Diffusion diffusers folder; PNG out.
    Image(image::ImageArgs),
}

#[derive(clap::Args)]
struct TextArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
    /// Render the prompt as a user message with the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message (with --chat).
    #[arg(long)]
    system: Option<String>,
    /// Maximum tokens to generate.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 128)]
    n: usize,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    min_p: Option<f32>,
    #[arg(long)]
    repeat_penalty: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Argmax decoding (same as --temperature 0).
    #[arg(long)]
    greedy: bool,
    /// Stop string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Context length to allocate (default: min(model's, 4096)).
    #[arg(long, default_value_t = 0)]
    ctx: usize,
    /// Matmul numerics: f32 (exact) or ggml (llama.cpp's 8-bit activations: its tokens).
    #[arg(long, default_value = "f32")]
    numerics: String,
    /// After generating, print one line of JSON with ids and speeds.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = pollster::block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {} ({})", e, e.name());
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Inspect { model } => inspect(&model).await,
        Cmd::Text(args) => text(args).await,
        Cmd::Perplexity { model, file, ctx, numerics, json } => perplexity(&model, &file, ctx, &numerics, json).await,
        Cmd::Bench { model, prompt_tokens, gen_tokens, numerics, json } => bench(&model, prompt_tokens, gen_tokens, &numerics, json).await,
        Cmd::Image(args) => image::run(args).await,
    }
}

async fn load(path: &PathBuf, ctx: usize, numerics: &str) -> Result<Engine> {
    let numerics = Numerics::parse(numerics)?;
    let src = FileSource::open(path)?;
    let mut last = 0u64;
    let mut progress = |done: u64, total: u64| {
        // A coarse progress line on stderr, never on stdout (stdout is the generated text).
        let pct = done * 100 / total.max(1);
        if pct >= last + 25 {
            last = pct;
            eprintln!("loading {pct}%");
        }
    };
    Engine::load(&src, &LoadOptions { ctx, numerics }, &mut progress).await
}

async fn inspect(path: &PathBuf) -> Result<()> {
    let src = FileSource::open(path)?;
    let g: GgufFile = read_gguf_header(&src).await?;
    let arch = g.get_str("general.architecture")?.unwrap_or("?").to_string();
    println!("file: {} ({} bytes, GGUF v{})", path.display(), g.file_len, g.version);
    println!("architecture: {arch}");
    if let Some(name) = g.get_str("general.name")? {
        println!("name: {name}");
    }
    match aigc::models::config::Config::from_gguf(&g) {
        Ok(c) => {
            println!(
                "hyper-parameters: layers {}, embd {}, ffn {}, heads {} / kv {} (head dim {}), rope dims {} base {} ({:?}), rms eps {:e}, context {}, vocab {}",
                c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_kv, c.head_dim, c.n_rot, c.rope_base, c.rope_mode, c.eps, c.ctx_train, c.vocab
            );
        }
        Err(e) => println!("hyper-parameters: not runnable here: {e} ({})", e.name()),
    }
    let mut by_type: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for t in &g.tensors {
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let types: Vec<String> = by_type.iter().map(|(k, (n, b))| format!("{n} × {k} ({:.1} MiB)", *b as f64 / 1048576.0)).collect();
    println!("tensors: {} — {}", g.tensors.len(), types.join(", "));
    let tok_model = g.get_str("tokenizer.ggml.model")?.unwrap_or("none");
    let pre = g.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let n_tok = g.get_str_array("tokenizer.ggml.tokens")?.map_or(0, |t| t.len());
    let n_merges = g.get_str_array("tokenizer.ggml.merges")?.map_or(0, |t| t.len());
    println!("tokenizer: {tok_model} (pre {pre}), {n_tok} tokens, {n_merges} merges");
    match aigc::tokenizer::Tokenizer::from_gguf(&g) {
        Ok(t) => println!("tokenizer check: ok (bos {:?}, eos {:?})", t.bos_id(), t.eos_id()),
        Err(e) => println!("tokenizer check: {e}"),
    }
    println!("chat template: {}", if g.get_str("tokenizer.chat_template")?.is_some() { "present" } else { "absent" });
    Ok(())
}

fn sampler_from(a: &TextArgs) -> SamplerConfig {
    SamplerConfig::with(&SamplerOverrides {
        temperature: if a.greedy { Some(0.0) } else { a.temperature },
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        seed: Some(a.seed),
    })
}

async fn text(a: TextArgs) -> Result<()> {
    let sampler = sampler_from(&a);
    sampler.validate().map_err(|e| Error::InvalidOption(e.to_string()))?;
    let mut engine = load(&a.model, a.ctx, &a.numerics).await?;
    let prompt = if a.chat {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(Message::new("system", s.clone()));
        }
        msgs.push(Message::new("user", a.prompt.clone()));
        let rendered = engine.render_chat(&msgs, None)?;
        engine.encode_chat(&rendered)
    } else {
        engine.encode_plain(&a.prompt)
    };
    let opts = GenOptions { max_tokens: a.n, sampler, stop: a.stop.clone() };
    let mut out = std::io::stdout();
    let res = engine
        .generate(&prompt, &opts, &mut |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
            true
        })
        .await?;
    println!();
    if a.json {
        let j = serde_json::json!({
            "prompt_tokens": res.prompt_tokens,
            "tokens": res.tokens,
            "text": res.text,
            "finish_reason": res.finish,
            "prefill_tokens_per_s": res.prefill_tokens_per_s(),
            "decode_tokens_per_s": res.decode_tokens_per_s(),
        });
        println!("{j}");
    }
    Ok(())
}

async fn perplexity(model: &PathBuf, file: &PathBuf, ctx: usize, numerics: &str, json: bool) -> Result<()> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::Io(format!("{}: {e}", file.display())))?;
    let mut engine = load(model, ctx.max(2), numerics).await?;
    let tokens = engine.encode_plain(&text);
    let r = engine.perplexity(&tokens, ctx).await?;
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| Error::Io(e.to_string()))?);
    } else {
        println!("perplexity {:.4} over {} scored tokens ({} in file, windows of {ctx})", r.perplexity, r.scored, tokens.len());
    }
    Ok(())
}

async fn bench(model: &PathBuf, prompt_tokens: usize, gen_tokens: usize, numerics: &str, json: bool) -> Result<()> {
    let ctx = (prompt_tokens + gen_tokens + 1).max(64);
    let mut engine = load(model, ctx, numerics).await?;
    let gpu = engine.gpu.clone();
    // A deterministic prompt: real text, repeated until it is long enough.
    let seed_text = "The quick brown fox jumps over the lazy dog while the river runs to the sea. ";
    let mut prompt = Vec::new();
    while prompt.len() < prompt_tokens {
        prompt.extend(engine.encode_plain(seed_text));
    }
    prompt.truncate(prompt_tokens.max(1));

    // Prefill: one pass over the prompt, timed to the readback of the last logits.
    let t0 = Instant::now();
    let mut logits = aigc::generate::prefill(&gpu, &engine.model, &mut engine.cache, &prompt).await?;
    let prefill_s = t0.elapsed().as_secs_f64();

    // Decode: greedy steps, each ending in a readback (as real generation does).
    let d0 = stats::dispatches();
    let t1 = Instant::now();
    for _ in 0..gen_tokens {
        let next = argmax(&logits);
        let l = engine.model.forward(&gpu, &[next], &mut engine.cache, false)?;
        logits = gpu.read_f32(&l).await?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    let dispatches = (stats::dispatches() - d0) as f64 / gen_tokens.max(1) as f64;

    // GEMV bandwidth: the LM head alone, many times, timed to one final readback.
    let x = gpu.upload_f32(&vec![0.01; engine.model.cfg.n_embd], &[1, engine.model.cfg.n_embd]);
    let reps = 20;
    let _ = gpu.read_f32(&engine.model.lm_head_gemv(&gpu, &x)).await?;
    let t2 = Instant::now();
    let mut last = None;
    for _ in 0..reps {
        last = Some(engine.model.lm_head_gemv(&gpu, &x));
    }
    if let Some(l) = last {
        gpu.read_f32(&l).await?;
    }
    let gemv_s = t2.elapsed().as_secs_f64();
    let gemv_gbs = (engine.model.lm_head_bytes() * reps) as f64 / gemv_s / 1e9;
    let decode_tps = gen_tokens as f64 / decode_s;
    let model_gbs = engine.model.matmul_bytes as f64 * decode_tps / 1e9;
    let r = &gpu.report;
    if json {
        let j = serde_json::json!({
            "adapter": r.name, "backend": r.backend, "device_type": r.device_type,
            "max_storage_binding": r.max_storage_binding, "shader_f16": r.shader_f16, "subgroups": r.subgroups,
            "prompt_tokens": prompt.len(), "gen_tokens": gen_tokens,
            "prefill_tokens_per_s": prompt.len() as f64 / prefill_s,
            "decode_tokens_per_s": decode_tps,
            "dispatches_per_token": dispatches, "numerics": engine.model.numerics.name(),
            "gemv_gb_per_s": gemv_gbs,
            "decode_weight_gb_per_s": model_gbs,
        });
        println!("{j}");
    } else {
        println!("adapter: {} ({}, {})", r.name, r.backend, r.device_type);
        println!(
            "limits: storage binding {} MiB, buffer {} MiB; features: shader-f16 {}, subgroups {}",
            r.max_storage_binding >> 20,
            r.max_buffer >> 20,
            if r.shader_f16 { "yes" } else { "no" },
            if r.subgroups { "yes" } else { "no" }
        );
        println!("prefill: {} tokens in {:.3} s = {:.1} tokens/s", prompt.len(), prefill_s, prompt.len() as f64 / prefill_s);
        println!("decode: {gen_tokens} tokens in {decode_s:.3} s = {decode_tps:.2} tokens/s");
        println!("dispatches per generated token: {dispatches:.0} (numerics {})", engine.model.numerics.name());
        println!("quantized GEMV (LM head, {:.1} MiB {}): {gemv_gbs:.2} GB/s", engine.model.lm_head_bytes() as f64 / 1048576.0, "weights");
        println!("decode weight traffic: {model_gbs:.2} GB/s ({:.1} MiB of matmul weights per token)", engine.model.matmul_bytes as f64 / 1048576.0);
    }
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
