//! CLIP tokenizer against transformers' CLIPTokenizer: ids identical on a mixed corpus and 150 seeded random
//! strings (fixture made by `tests/fixtures/make_clip_tokenizer_fixtures.py`), for the full CLIP vocab
//! (`target/fixtures/clip-tokenizer/`) and the 1000-token vocabs of the tiny SD 1.x / 2.x models
//! (`target/fixtures/sd-tiny-v{1,2}/tokenizer/`), all written by `tests/fixtures/make_sd_fixtures.py`
//! (`./build.sh fixtures`). Plus the 77-token padded layout of each family and the named errors.

use std::sync::OnceLock;

use aigc::tokenizer::{ClipTokenizer, TokenizerError};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/clip_tokenizer/ids.json");
const FIXTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixtures");
const KINDS: [(&str, &str); 3] =
    [("full", "clip-tokenizer"), ("tiny-v1", "sd-tiny-v1/tokenizer"), ("tiny-v2", "sd-tiny-v2/tokenizer")];

fn read(dir: &str, file: &str) -> String {
    let path = format!("{FIXTURES_DIR}/{dir}/{file}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}\n*** the CLIP tokenizer fixtures are missing: run `./build.sh fixtures` (or python3 tests/fixtures/make_sd_fixtures.py --out target/fixtures) ***")
    })
}

struct Files {
    vocab: String,
    merges: String,
    config: String,
}

fn files(kind: &str) -> &'static Files {
    static CACHE: OnceLock<Vec<Files>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        KINDS
            .iter()
            .map(|(_, dir)| Files {
                vocab: read(dir, "vocab.json"),
                merges: read(dir, "merges.txt"),
                config: read(dir, "tokenizer_config.json"),
            })
            .collect()
    });
    let i = KINDS.iter().position(|(k, _)| *k == kind).unwrap();
    &all[i]
}

fn tokenizer(kind: &str) -> &'static ClipTokenizer {
    static CACHE: OnceLock<Vec<ClipTokenizer>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        KINDS
            .iter()
            .map(|(k, _)| {
                let f = files(k);
                ClipTokenizer::from_files(&f.vocab, &f.merges, Some(&f.config)).unwrap()
            })
            .collect()
    });
    &all[KINDS.iter().position(|(k, _)| *k == kind).unwrap()]
}

fn fixture() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| serde_json::from_str(FIXTURE).unwrap())
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn special_ids_match_transformers() {
    for (kind, _) in KINDS {
        let t = tokenizer(kind);
        let m = &fixture()["meta"]["special"][kind];
        assert_eq!(t.bos_id() as u64, m["bos"].as_u64().unwrap(), "{kind} bos");
        assert_eq!(t.eos_id() as u64, m["eos"].as_u64().unwrap(), "{kind} eos");
        assert_eq!(t.pad_id() as u64, m["pad"].as_u64().unwrap(), "{kind} pad");
        assert_eq!(t.max_length() as u64, m["max_length"].as_u64().unwrap(), "{kind} max_length");
        assert_eq!(t.vocab_size() as u64, m["vocab_size"].as_u64().unwrap(), "{kind} vocab size");
    }
    assert_eq!((tokenizer("full").bos_id(), tokenizer("full").eos_id()), (49406, 49407));
    assert_eq!(tokenizer("tiny-v2").pad_id(), 0);
}

#[test]
fn ids_match_transformers() {
    let cases = fixture()["cases"].as_array().unwrap();
    assert!(cases.len() > 150);
    let mut failures = Vec::new();
    let mut n = 0;
    for case in cases {
        // ours does no NFC normalization: decomposed inputs are compared through their NFC form
        let text = case.get("text_nfc").unwrap_or(&case["text"]).as_str().unwrap();
        for (kind, _) in KINDS {
            let want = ids(&case["ids"][kind]);
            let got = tokenizer(kind).encode(text);
            n += 1;
            if got != want {
                failures.push(format!("{kind} {text:?}\n   ours {got:?}\n   transformers {want:?}"));
            }
            if let Some(p) = case.get("padded") {
                let want = ids(&p[kind]);
                let got = tokenizer(kind).encode_padded(text);
                n += 1;
                if got != want {
                    failures.push(format!("{kind} padded {text:?}\n   ours {got:?}\n   transformers {want:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn special_token_matching_follows_the_config() {
    // which special texts are cut from the raw text and which after lower-casing, per tokenizer_config
    let f = files("tiny-v1");
    let configs = fixture()["configs"].as_object().unwrap();
    assert!(configs.len() >= 8);
    for (name, c) in configs {
        let t = ClipTokenizer::from_files(&f.vocab, &f.merges, Some(&c["config"].to_string())).unwrap();
        for (text, want) in c["ids"].as_object().unwrap() {
            assert_eq!(t.encode(text), ids(want), "config {name}, text {text:?}");
        }
    }
}

#[test]
fn known_ids_and_padding_layout() {
    let t = tokenizer("full");
    assert_eq!(t.encode("a photo of a cat"), vec![320, 1125, 539, 320, 2368]);
    assert_eq!(t.encode(""), Vec::<u32>::new());
    let p = t.encode_padded("a photo of a cat");
    assert_eq!(p.len(), 77);
    assert_eq!(&p[..7], &[49406, 320, 1125, 539, 320, 2368, 49407]);
    assert!(p[7..].iter().all(|&x| x == 49407));
    // SD 2.x pads with "!" (0) after the EOS
    let t2 = tokenizer("tiny-v2");
    let p = t2.encode_padded("a cat");
    assert_eq!(p.len(), 77);
    assert_eq!(p[0], 998);
    let eos = p.iter().position(|&x| x == 999).unwrap();
    assert!(p[eos + 1..].iter().all(|&x| x == 0));
    // truncation keeps BOS + 75 tokens + EOS
    let long = "cat ".repeat(200);
    let p = t.encode_padded(&long);
    assert_eq!(p.len(), 77);
    assert_eq!((p[0], p[76]), (49406, 49407));
    assert!(p[1..76].iter().all(|&x| x == 2368));
}

#[test]
fn config_variants() {
    let f = files("tiny-v1");
    // no config: SD 1.x defaults
    let t = ClipTokenizer::from_files(&f.vocab, &f.merges, None).unwrap();
    assert_eq!((t.bos_id(), t.eos_id(), t.pad_id(), t.max_length()), (998, 999, 999, 77));
    // special_tokens_map.json works as the config; plain-string tokens; "no limit" max length → 77
    let cfg = r#"{"pad_token": "!", "bos_token": "<|startoftext|>", "model_max_length": 1e30}"#;
    let t = ClipTokenizer::from_files(&f.vocab, &f.merges, Some(cfg)).unwrap();
    assert_eq!((t.pad_id(), t.max_length()), (0, 77));
    let t = ClipTokenizer::from_files(&f.vocab, &f.merges, Some(r#"{"model_max_length": 8}"#)).unwrap();
    assert_eq!(t.encode_padded("a photo of a cat, a photo of a dog"), {
        let mut v = vec![998];
        v.extend(&t.encode("a photo of a cat, a photo of a dog")[..6]);
        v.push(999);
        v
    });
}

#[test]
fn malformed_files_are_named_errors() {
    let f = files("tiny-v1");
    let err = |v: &str, m: &str, c: Option<&str>| ClipTokenizer::from_files(v, m, c).unwrap_err();
    assert!(matches!(err("not json", &f.merges, None), TokenizerError::BadJson { file: "vocab.json", .. }));
    assert!(matches!(err("[1, 2]", &f.merges, None), TokenizerError::BadJson { file: "vocab.json", .. }));
    assert!(matches!(err(r#"{"a": -1}"#, "", None), TokenizerError::BadJson { file: "vocab.json", .. }));
    assert!(matches!(err("{}", "", None), TokenizerError::EmptyVocab));
    assert!(matches!(err(r#"{"a": 0, "b": 0}"#, "", None), TokenizerError::DuplicateToken { id: 0, .. }));
    // merges: one token on a line, three tokens, a token not in the vocabulary, a result not in it
    for (bad, index) in [("i n\nt\n", 1), ("i n\nt h e\n", 1), ("#version: 0.2\ni  n\n", 0)] {
        match err(&f.vocab, bad, None) {
            TokenizerError::BadMerge { index: i, .. } => assert_eq!(i, index, "{bad:?}"),
            e => panic!("{bad:?}: {e}"),
        }
    }
    match err(&f.vocab, "i n\nq 中\n", None) {
        TokenizerError::MergeOutOfVocab { index: 1, token, .. } => assert_eq!(token, "中"),
        e => panic!("{e}"),
    }
    match err(&f.vocab, "x y\n", None) {
        TokenizerError::MergeOutOfVocab { index: 0, token, .. } => assert_eq!(token, "xy"),
        e => panic!("{e}"),
    }
    // config
    assert!(matches!(err(&f.vocab, &f.merges, Some("{")), TokenizerError::BadJson { file: "tokenizer_config.json", .. }));
    assert!(matches!(err(&f.vocab, &f.merges, Some("[]")), TokenizerError::BadJson { .. }));
    assert!(matches!(err(&f.vocab, &f.merges, Some(r#"{"pad_token": 5}"#)), TokenizerError::BadJson { .. }));
    assert!(matches!(err(&f.vocab, &f.merges, Some(r#"{"pad_token": {"x": 1}}"#)), TokenizerError::BadJson { .. }));
    match err(&f.vocab, &f.merges, Some(r#"{"pad_token": "<pad>"}"#)) {
        TokenizerError::MissingSpecialToken { which: "pad_token", text } => assert_eq!(text, "<pad>"),
        e => panic!("{e}"),
    }
    for m in ["1", "0", "-5", "\"77\"", "1e6", "77.5"] {
        let cfg = format!(r#"{{"model_max_length": {m}}}"#);
        assert!(matches!(err(&f.vocab, &f.merges, Some(&cfg)), TokenizerError::BadMaxLength(_)), "{m}");
    }
    // a vocab without the specials
    let no_specials = r#"{"a</w>": 0, "a": 1}"#;
    assert!(matches!(err(no_specials, "", None), TokenizerError::MissingSpecialToken { which: "bos_token", .. }));
}

#[test]
fn never_panics_on_odd_text() {
    let t = tokenizer("tiny-v2");
    let mut s = String::new();
    for c in ['\u{0}', '\u{10FFFF}', '\u{FFFD}', 'İ', '\'', '!', ' ', '\u{301}', '😀', 'x'] {
        s.push(c);
        let ids = t.encode(&s);
        assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
        assert_eq!(t.encode_padded(&s).len(), 77);
    }
    // a long single word stays fast (heap BPE, not quadratic)
    let word = "ab".repeat(20_000);
    let start = std::time::Instant::now();
    assert!(!tokenizer("full").encode(&word).is_empty());
    assert!(start.elapsed().as_secs_f64() < 5.0);
}
