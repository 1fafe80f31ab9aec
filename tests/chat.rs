//! Chat templates: real models' templates render exactly as HF's `apply_chat_template` would, and
//! hostile templates fail fast.

use std::time::{Duration, Instant};

use aigc::chat::{default_template_for, render, ChatError, Message, CHATML_TEMPLATE};

/// SmolLM2-135M-Instruct's, from models/SmolLM2-135M-Instruct.Q4_1.gguf (real newlines inside).
const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// meta-llama/Llama-3.2-3B-Instruct (calls `strftime_now`, trims contents, starts with BOS).
const LLAMA32: &str = r#"{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"#;

/// Qwen/Qwen2.5-7B-Instruct (default system prompt, `message.tool_calls` undefined for us).
const QWEN25: &str = r#"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"#;

/// TinyLlama/TinyLlama-1.1B-Chat-v1.0 (Zephyr style): relies on trim_blocks for its layout.
const TINYLLAMA: &str = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/// google/gemma-2b-it (and gemma-2): no system role, strict alternation via `raise_exception`.
const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

fn msgs(turns: &[(&str, &str)]) -> Vec<Message> {
    turns.iter().map(|(r, c)| Message::new(*r, *c)).collect()
}

/// Renders `turns` through a model's template, with that model's BOS and EOS texts.
fn run(model: &str, turns: &[(&str, &str)], gen: bool) -> Result<String, ChatError> {
    let (template, bos, eos) = match model {
        "smollm2" => (SMOLLM2, "<|im_start|>", "<|im_end|>"),
        "llama32" => (LLAMA32, "<|begin_of_text|>", "<|eot_id|>"),
        "qwen25" => (QWEN25, "<|endoftext|>", "<|im_end|>"),
        "tinyllama" => (TINYLLAMA, "<s>", "</s>"),
        "gemma" => (GEMMA, "<bos>", "<eos>"),
        _ => (CHATML_TEMPLATE, "", ""),
    };
    render(template, &msgs(turns), gen, bos, eos)
}

fn check(model: &str, turns: &[(&str, &str)], gen: bool, want: &str) {
    assert_eq!(run(model, turns, gen).unwrap(), want);
}

fn plain(template: &str) -> Result<String, ChatError> {
    render(template, &[], false, "<s>", "</s>")
}

/// The variant's name, or the output for a success, to compare results in one line.
fn kind(r: &Result<String, ChatError>) -> String {
    match r {
        Ok(s) => format!("Ok({s})"),
        Err(ChatError::NoTemplate) => "NoTemplate".into(),
        Err(ChatError::Syntax(_)) => "Syntax".into(),
        Err(ChatError::Render(_)) => "Render".into(),
        Err(ChatError::TemplateRaised(m)) => format!("TemplateRaised({m})"),
        Err(ChatError::TooLong) => "TooLong".into(),
        Err(ChatError::TooComplex(_)) => "TooComplex".into(),
    }
}

#[test]
fn smollm2_system_and_user() {
    let turns = [("system", "You are a pirate."), ("user", "Hello!")];
    let want =
        "<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n";
    check("smollm2", &turns, false, want);
    check(
        "smollm2",
        &turns,
        true,
        &format!("{want}<|im_start|>assistant\n"),
    );
}

#[test]
fn smollm2_inserts_its_default_system_prompt() {
    let turns = [("user", "Hi"), ("assistant", "Hello."), ("user", "Bye")];
    let want = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
                <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n\
                <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n";
    check("smollm2", &turns, true, want);
}

#[test]
fn llama32_multi_turn_with_system() {
    let turns = [
        ("system", "  Be concise.\n"),
        ("user", "What is 2+2? "),
        ("assistant", "4"),
        ("user", "And 3+3?"),
    ];
    let want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n\
                Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n\
                Be concise.<|eot_id|>\
                <|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>\
                <|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>\
                <|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>\
                <|start_header_id|>assistant<|end_header_id|>\n\n";
    check("llama32", &turns, true, want);
}

#[test]
fn llama32_without_system_keeps_the_date_block() {
    let want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n\
                Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>\
                <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
    check("llama32", &[("user", "Hi")], false, want);
}

#[test]
fn qwen25_default_and_explicit_system() {
    let want = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
                <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    check("qwen25", &[("user", "Hi")], true, want);

    let turns = [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "2+2?"),
    ];
    let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
                <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n";
    check("qwen25", &turns, false, want);
}

#[test]
fn tinyllama_zephyr_layout() {
    let sys = "You are a friendly chatbot who always responds in the style of a pirate";
    let user = "How many helicopters can a human eat in one sitting?";
    let want = "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n\
                <|user|>\nHow many helicopters can a human eat in one sitting?</s>\n<|assistant|>\n";
    check("tinyllama", &[("system", sys), ("user", user)], true, want);
    // Without the generation prompt the output ends after the last turn's newline.
    let want = "<|user|>\nHi</s>\n<|assistant|>\nArr!</s>\n";
    check(
        "tinyllama",
        &[("user", "Hi"), ("assistant", "Arr!")],
        false,
        want,
    );
}

#[test]
fn gemma_turns_and_raised_errors() {
    let turns = [
        ("user", "Hello, how are you?"),
        ("assistant", "  I'm doing great.  "),
        ("user", "Tell me a joke."),
    ];
    let want = "<bos><start_of_turn>user\nHello, how are you?<end_of_turn>\n\
                <start_of_turn>model\nI'm doing great.<end_of_turn>\n\
                <start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n";
    check("gemma", &turns, true, want);

    let sys = run("gemma", &[("system", "Be nice."), ("user", "Hi")], true);
    assert_eq!(kind(&sys), "TemplateRaised(System role not supported)");
    let twice = run("gemma", &[("user", "Hi"), ("user", "Hi again")], true);
    let want =
        "TemplateRaised(Conversation roles must alternate user/assistant/user/assistant/...)";
    assert_eq!(kind(&twice), want);
}

#[test]
fn chatml_fallback_and_no_template() {
    let want = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    check("chatml", &[("user", "Hi")], true, want);
    let m = msgs(&[("user", "Hi")]);
    assert_eq!(kind(&render("", &m, true, "", "")), "NoTemplate");
    assert_eq!(kind(&render(" \n", &m, true, "", "")), "NoTemplate");
    let msg = ChatError::NoTemplate.to_string();
    assert!(msg.contains("no chat template"));
    assert_eq!(default_template_for("llama"), None);
}

#[test]
// The tables read best one case a line: rustfmt would split each in four.
#[rustfmt::skip]
fn hf_globals_and_whitespace_rules() {
    let cases = [
        // strftime_now is the fixed date, whatever the format asks for.
        ("{{ strftime_now('%d %b %Y') }}", "Ok(26 Jul 2024)"),
        ("{{ strftime_now('%-d %B %Y, %A %a %H:%M %j %m %y %%') }}", "Ok(26 July 2024, Friday Fri 00:00 208 07 24 %)"),
        // tools is none, date_string undefined, nothing is HTML-escaped.
        ("{% if tools is none %}none{% endif %}|{{ date_string }}|{{ '<a&b>' }}", "Ok(none||<a&b>)"),
        // Python string methods (pycompat).
        ("{{ '  hi  '.strip() }}|{{ 'a,b'.split(',') | join('+') }}", "Ok(hi|a+b)"),
        ("{% if 'hello'.startswith('he') %}y{% endif %}", "Ok(y)"),
        // trim_blocks + lstrip_blocks, and the template's final newline dropped.
        ("{% if true %}\n    a\n  {% endif %}\nb\n", "Ok(    a\nb)"),
        // Loop controls, as HF enables them.
        ("{% for i in range(5) %}{% if i == 2 %}{% break %}{% endif %}{{ i }}{% endfor %}", "Ok(01)"),
        ("{{ raise_exception('boom') }}", "TemplateRaised(boom)"),
        ("{{ raise_exception(42) }}", "TemplateRaised(42)"),
    ];
    for (t, want) in cases {
        assert_eq!(kind(&plain(t)), want, "{t}");
    }
}

#[test]
#[rustfmt::skip]
fn syntax_and_render_errors() {
    let cases = [
        ("{% for m in messages %}x", "Syntax"),
        ("{{ 'unterminated }}", "Syntax"),
        ("{% if %}{% endif %}", "Syntax"),
        ("{{ a + }}", "Syntax"),
        ("{{ 1 + 'a' }}", "Render"),
        // No loader: include/import find nothing (and never touch the filesystem).
        ("{% include '/etc/passwd' %}", "Render"),
        ("{% import 'x' as y %}", "Render"),
    ];
    for (t, want) in cases {
        assert_eq!(kind(&plain(t)), want, "{t}");
    }
}

#[test]
#[rustfmt::skip]
fn hostile_templates_fail_fast() {
    let cases = [
        ("{% for i in range(10**9) %}x{% endfor %}", "TooComplex"),
        // Within range()'s cap, but 10^10 iterations: the fuel stops it.
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "TooComplex"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "TooComplex"),
        ("{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(0) }}", "TooComplex"),
        // 100 MB of output: cut at the cap.
        ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "TooLong"),
        // Over minijinja's own 100 MB cap on string repetition.
        ("{{ 'x' * 10**12 }}", "Render"),
    ];
    for (t, want) in cases {
        let start = Instant::now();
        let got = plain(t);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "{t}: took {took:?}");
        assert_eq!(kind(&got), want, "{t}");
    }
}

#[test]
fn long_real_conversation_fits_the_budget() {
    let mut turns = Vec::new();
    for i in 0..1000 {
        turns.push(Message::new("user", format!("question {i}")));
        turns.push(Message::new("assistant", format!("answer {i}")));
    }
    for t in [SMOLLM2, LLAMA32, QWEN25, TINYLLAMA, GEMMA] {
        let out = render(t, &turns, true, "<s>", "</s>").unwrap();
        assert!(out.contains("answer 999"));
    }
}
