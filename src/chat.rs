//! Chat templates: renders a conversation into the prompt text a model was trained on.
//!
//! Owns [`Message`], [`render`] (a Hugging Face chat template — Jinja — run by minijinja with HF's
//! settings and globals), [`ChatError`], and the fallback [`CHATML_TEMPLATE`].
//!
//! The template comes from a downloaded GGUF, so it is untrusted code. The sandbox: no loader (so
//! `include`/`import`/`extends` find nothing and nothing touches the filesystem), a fuel budget
//! (bounds the instructions run: no endless loop), a recursion limit (no stack overflow, which in
//! wasm would kill the instance), and a cap on the output size. minijinja itself caps `range()` at
//! 100 000 items and `'x' * n` at 100 MB. Not covered: a loop doubling a string with `~` can still
//! allocate gigabytes in a few dozen steps, as minijinja has no memory limit to hook into.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use minijinja::{context, AutoEscape, Environment, Error as JinjaError, ErrorKind, Value};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One turn of a conversation, as HF templates see it: `message.role`, `message['content']`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant` (templates may accept others, e.g. `tool`).
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Why a conversation could not be turned into a prompt.
#[derive(Debug, Error)]
pub enum ChatError {
    /// No template in the model file, and the caller passed none.
    #[error("this model has no chat template; pass one or use plain completion")]
    NoTemplate,
    /// The template does not parse.
    #[error("chat template syntax error: {0}")]
    Syntax(String),
    /// The template parsed but failed while rendering (bad operation, missing value, …).
    #[error("chat template failed to render: {0}")]
    Render(String),
    /// The template called `raise_exception(msg)`: it rejects this conversation (e.g. Gemma refuses a
    /// system message, many templates require user/assistant alternation).
    #[error("chat template rejected the conversation: {0}")]
    TemplateRaised(String),
    /// The rendered prompt would exceed [`MAX_OUTPUT_BYTES`].
    #[error("chat template output exceeds {} bytes", MAX_OUTPUT_BYTES)]
    TooLong,
    /// The template ran out of its instruction budget or recursion depth: an endless loop, or a
    /// hostile template.
    #[error("chat template exceeded its execution budget: {0}")]
    TooComplex(String),
}

/// Largest prompt text `render` produces. Far above any context window's worth of text.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Instructions one render may run. Real templates use about 20–100 per message (a 1 000-message
/// conversation through Llama 3.2's template stays well under 100 000), and minijinja runs tens of
/// millions per second, so this is generous for real use and a fraction of a second for an attack.
const FUEL: u64 = 5_000_000;

/// minijinja's own default is 500 (macros count ~10 each), tuned for native stacks; wasm32's default
/// stack is 1 MiB, so stay well below. Real templates nest a few levels.
const RECURSION_LIMIT: usize = 200;

/// The date `strftime_now` reports: Friday 26 July 2024 (day 208 of the year), 00:00:00 UTC.
///
/// Fixed on purpose, though HF and llama.cpp read the clock: the same conversation must give the
/// same prompt (seeded generation reproduces exactly, tests can pin prompts, a cached prompt prefix
/// stays valid across midnight), and wasm has no clock or time zone without JavaScript. It is the
/// date Llama 3.x's own template falls back to when `strftime_now` is missing. A caller who wants
/// the real date puts it in the system message.
const FIXED_DATE: (u32, u32, u32) = (2024, 7, 26);
const FIXED_WEEKDAY: &str = "Friday";
const FIXED_DAY_OF_YEAR: u32 = 208;

/// Generic ChatML (`<|im_start|>role\n…<|im_end|>\n`), as llama.cpp's `chatml`; for models whose
/// file carries no template and that are known to be trained on ChatML.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}\
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A built-in template for an architecture (`general.architecture`) whose files often lack one.
///
/// None for now: guessing a format from the architecture alone is wrong too often (a `llama` file
/// may be Llama 2 chat, Llama 3, Zephyr, ChatML, …). Callers report [`ChatError::NoTemplate`].
pub fn default_template_for(arch: &str) -> Option<&'static str> {
    let _ = arch;
    None
}

/// Renders `messages` through an HF chat template, as `tokenizer.apply_chat_template(…,
/// tokenize=False)` would.
///
/// `bos_token`/`eos_token` are the token *texts*. Many templates (Llama 3, Gemma) start with
/// `{{ bos_token }}`: tokenize their output without adding another BOS. An empty or blank
/// `template` gives [`ChatError::NoTemplate`].
pub fn render(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String, ChatError> {
    if template.trim().is_empty() {
        return Err(ChatError::NoTemplate);
    }
    // `raise_exception` leaves its message here: minijinja may wrap or annotate the error on its way
    // out, so matching the error text afterwards would be fragile.
    let raised: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let env = sandbox(Arc::clone(&raised));
    let tmpl = env
        .template_from_str(template)
        .map_err(|e| ChatError::Syntax(e.to_string()))?;

    let ctx = context! {
        messages => Value::from_serialize(messages),
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
        // HF passes these as None when unused; templates test `if tools` or `tools is not none`.
        tools => Value::from(()),
        documents => Value::from(()),
    };
    let mut out = CappedWriter {
        buf: Vec::new(),
        overflowed: false,
    };
    if let Err(e) = tmpl.render_captured_to(ctx, &mut out) {
        if let Some(msg) = raised.lock().ok().and_then(|mut r| r.take()) {
            return Err(ChatError::TemplateRaised(msg));
        }
        if out.overflowed {
            return Err(ChatError::TooLong);
        }
        return Err(classify(e));
    }
    String::from_utf8(out.buf).map_err(|_| ChatError::Render("output is not valid UTF-8".into()))
}

/// An environment with HF's whitespace rules and globals, and the limits of the module header.
fn sandbox(raised: Arc<Mutex<Option<String>>>) -> Environment<'static> {
    // Environment::new has no loader (the `loader` feature is off): nothing but this one template.
    let mut env = Environment::new();
    // HF: `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`; Jinja's default
    // keep_trailing_newline=False drops one final newline of the template, which changes prompts.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    // minijinja would HTML-escape for names like `*.html`; a prompt must never be escaped.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    // Python string/dict methods (`.strip()`, `.startswith()`, `.split()`, `.items()`, …).
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    // Takes any value (or none) so that a sloppy call still reports as the template's own refusal.
    env.add_function(
        "raise_exception",
        move |msg: Option<Value>| -> Result<Value, JinjaError> {
            let msg = msg.map(|m| m.to_string()).unwrap_or_default();
            if let Ok(mut slot) = raised.lock() {
                slot.get_or_insert_with(|| msg.clone());
            }
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        },
    );
    env.add_function("strftime_now", |fmt: String| strftime_fixed(&fmt));
    env
}

/// Maps a render error to the variant a caller can act on.
fn classify(e: JinjaError) -> ChatError {
    let limit_hit = e.kind() == ErrorKind::OutOfFuel
        || matches!(
            e.detail(),
            Some("recursion limit exceeded" | "range has too many elements")
        );
    if limit_hit {
        ChatError::TooComplex(e.to_string())
    } else {
        ChatError::Render(e.to_string())
    }
}

/// Collects the output and refuses bytes past [`MAX_OUTPUT_BYTES`], which aborts the render.
struct CappedWriter {
    buf: Vec<u8>,
    overflowed: bool,
}

impl Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("chat template output too long"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Python's `strftime` for the subset templates use, applied to [`FIXED_DATE`] at 00:00:00 UTC.
/// `%-d`-style (glibc: no padding) is accepted; unknown directives are copied as they are.
fn strftime_fixed(fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let (year, month, day) = FIXED_DATE;
    let month_name = MONTHS.get(month as usize - 1).copied().unwrap_or("July");
    let abbr = |name: &'static str| name.get(..3).unwrap_or(name);
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = chars.next();
        let unpadded = spec == Some('-');
        if unpadded {
            spec = chars.next();
        }
        let num = |n: u32| {
            if unpadded {
                n.to_string()
            } else {
                format!("{n:02}")
            }
        };
        match spec {
            Some('d') => out.push_str(&num(day)),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('m') => out.push_str(&num(month)),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&num(year % 100)),
            Some('B') => out.push_str(month_name),
            Some('b' | 'h') => out.push_str(abbr(month_name)),
            Some('A') => out.push_str(FIXED_WEEKDAY),
            Some('a') => out.push_str(abbr(FIXED_WEEKDAY)),
            Some('H' | 'M' | 'S') => out.push_str(&num(0)),
            Some('I') => out.push_str("12"),
            Some('p') => out.push_str("AM"),
            Some('j') => out.push_str(&if unpadded {
                FIXED_DAY_OF_YEAR.to_string()
            } else {
                format!("{FIXED_DAY_OF_YEAR:03}")
            }),
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}
