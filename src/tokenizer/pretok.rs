//! Pre-tokenizers of byte-level BPE: split text into words before merging, exactly as llama.cpp's
//! `unicode_regex_split` does for each `tokenizer.ggml.pre` family. The lookahead regexes
//! (`\s+(?!\S)`) are hand-written ports of llama.cpp's `unicode_regex_split_custom_*` (gpt2,
//! llama3, qwen2), and the plain regexes (`\p{N}`, `\p{N}+`, `[0-9]{3}`, the punctuation class of
//! the `default` family) are matched as std::regex would on llama.cpp's "collapsed" text.
//!
//! Each stage refines a list of segment lengths (in code points); later stages never cross the
//! boundaries earlier ones made (llama.cpp's `offsets`).

use std::ops::Range;

use super::unicode::{ascii_lower, flags, Flags};

/// Which list of regexes a `tokenizer.ggml.pre` value selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreRegex {
    /// llama.cpp's fallback: punctuation runs, gpt2, `\p{N}+`, `[0-9][0-9][0-9]`.
    Default,
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// `\p{N}` (every digit alone), then the gpt2 regex (starcoder, smollm, refact, …).
    DigitsGpt2,
    /// Llama-3: `(?i:'s|…)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// Qwen2: as Llama-3 but `\p{N}` (digits singly).
    Qwen2,
}

/// Split `text` into words; returns byte ranges of `text` that tile it in order.
pub(crate) fn split(kind: PreRegex, text: &str) -> Vec<Range<usize>> {
    let cpts: Vec<char> = text.chars().collect();
    let mut offsets = vec![cpts.len()];
    match kind {
        PreRegex::Default => {
            offsets = split_class_runs(&cpts, &offsets, is_default_punct, true);
            offsets = custom_gpt2(&cpts, &offsets);
            offsets = split_class_runs(&cpts, &offsets, |c| flags(c).is_number_category(), true);
            offsets = split_ascii_digit_triples(&cpts, &offsets);
        }
        PreRegex::Gpt2 => offsets = custom_gpt2(&cpts, &offsets),
        PreRegex::DigitsGpt2 => {
            offsets = split_class_runs(&cpts, &offsets, |c| flags(c).is_number_category(), false);
            offsets = custom_gpt2(&cpts, &offsets);
        }
        PreRegex::Llama3 => offsets = custom_llama3(&cpts, &offsets, 3),
        PreRegex::Qwen2 => offsets = custom_llama3(&cpts, &offsets, 1),
    }
    // code-point lengths -> byte ranges
    let mut out = Vec::with_capacity(offsets.len());
    let mut chars = cpts.iter();
    let mut byte = 0usize;
    for len in offsets {
        let start = byte;
        for c in chars.by_ref().take(len) {
            byte += c.len_utf8();
        }
        out.push(start..byte);
    }
    out
}

/// `[\p{P}\$\+<=>\^~\|]` on llama.cpp's collapsed text: ASCII punctuation and symbols except the
/// backtick, and non-ASCII code points whose category is punctuation.
fn is_default_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() && c != '`';
    }
    let f = flags(c);
    !f.is_whitespace() && f.is_punctuation_category()
}

/// std::regex split with `[class]+` (runs) or `[class]` (single code points): matches and the
/// gaps between them each become a segment.
fn split_class_runs(cpts: &[char], offsets: &[usize], class: impl Fn(char) -> bool, runs: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &len in offsets {
        let seg = cpts.get(start..start + len).unwrap_or(&[]);
        let mut gap = 0usize;
        let mut i = 0usize;
        while i < seg.len() {
            if seg.get(i).is_some_and(|&c| class(c)) {
                let mut j = i + 1;
                if runs {
                    while seg.get(j).is_some_and(|&c| class(c)) {
                        j += 1;
                    }
                }
                if gap > 0 {
                    out.push(gap);
                    gap = 0;
                }
                out.push(j - i);
                i = j;
            } else {
                gap += 1;
                i += 1;
            }
        }
        if gap > 0 {
            out.push(gap);
        }
        start += len;
    }
    out
}

/// std::regex split with `[0-9][0-9][0-9]` (leftmost, non-overlapping).
fn split_ascii_digit_triples(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &len in offsets {
        let seg = cpts.get(start..start + len).unwrap_or(&[]);
        let is_d = |k: usize| seg.get(k).is_some_and(|c| c.is_ascii_digit());
        let mut gap = 0usize;
        let mut i = 0usize;
        while i < seg.len() {
            if is_d(i) && is_d(i + 1) && is_d(i + 2) {
                if gap > 0 {
                    out.push(gap);
                    gap = 0;
                }
                out.push(3);
                i += 3;
            } else {
                gap += 1;
                i += 1;
            }
        }
        if gap > 0 {
            out.push(gap);
        }
        start += len;
    }
    out
}

/// One segment being cut, with llama.cpp's `_get_cpt` / `_get_flags` / `_add_token` helpers.
struct Seg<'a> {
    cpts: &'a [char],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Seg<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        if self.ini <= pos && pos < self.end {
            self.cpts.get(pos).copied()
        } else {
            None
        }
    }
    fn fl(&self, pos: usize) -> Flags {
        self.cpt(pos).map(flags).unwrap_or_default()
    }
    fn add(&mut self, end: usize) -> usize {
        let len = end.saturating_sub(self.prev_end);
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (optionally case-insensitive): the match length.
    fn contraction(&self, pos: usize, fold: bool) -> usize {
        let low = |c: Option<char>| c.map(|c| if fold { ascii_lower(c) } else { c });
        if self.cpt(pos) != Some('\'') || pos + 1 >= self.end {
            return 0;
        }
        let next = low(self.cpt(pos + 1));
        if matches!(next, Some('s' | 't' | 'm' | 'd')) {
            return 2;
        }
        if pos + 2 < self.end {
            let nn = low(self.cpt(pos + 2));
            if matches!((next, nn), (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))) {
                return 3;
            }
        }
        0
    }
    fn count_ws(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.fl(pos + n).is_whitespace() {
            n += 1;
        }
        n
    }
}

fn not_wln(f: Flags) -> bool {
    !(f.is_whitespace() || f.is_letter() || f.is_number())
}

/// Port of `unicode_regex_split_custom_gpt2`.
fn custom_gpt2(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &len in offsets {
        let (ini, end) = (start, start + len);
        start = end;
        let mut s = Seg { cpts, ini, end, prev_end: ini, out: &mut out };
        let mut pos = ini;
        while pos < end {
            let cpt = s.cpt(pos);
            let fl = s.fl(pos);
            let n = s.contraction(pos, false);
            if n > 0 {
                pos += s.add(pos + n);
                continue;
            }
            let space = usize::from(cpt == Some(' '));
            let mut f2 = if space == 1 { s.fl(pos + 1) } else { fl };
            // <space>?\p{L}+  |  <space>?\p{N}+  |  <space>?[^\s\p{L}\p{N}]+
            let class: Option<fn(Flags) -> bool> = if f2.is_letter() {
                Some(Flags::is_letter)
            } else if f2.is_number() {
                Some(Flags::is_number)
            } else if not_wln(f2) && f2.any() {
                Some(|f: Flags| not_wln(f) && f.any())
            } else {
                None
            };
            if let Some(class) = class {
                pos += space;
                while class(f2) {
                    pos += 1;
                    f2 = s.fl(pos);
                }
                s.add(pos);
                continue;
            }
            let nws = s.count_ws(pos);
            if nws > 1 && s.cpt(pos + nws).is_some() {
                // \s+(?!\S)
                pos += nws - 1;
                s.add(pos);
                continue;
            }
            if nws > 0 {
                pos += nws;
                s.add(pos);
                continue;
            }
            pos += 1;
            s.add(pos);
        }
    }
    out
}

/// Port of `unicode_regex_split_custom_llama3` (`max_digits` 3) and `_qwen2` (`max_digits` 1).
fn custom_llama3(cpts: &[char], offsets: &[usize], max_digits: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0usize;
    for &len in offsets {
        let (ini, end) = (start, start + len);
        start = end;
        let mut s = Seg { cpts, ini, end, prev_end: ini, out: &mut out };
        let mut pos = ini;
        while pos < end {
            let cpt = s.cpt(pos);
            let fl = s.fl(pos);
            let n = s.contraction(pos, true);
            if n > 0 {
                pos += s.add(pos + n);
                continue;
            }
            let is_rn = |c: Option<char>| matches!(c, Some('\r' | '\n'));
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(is_rn(cpt) || fl.is_number()) && (fl.is_letter() || s.fl(pos + 1).is_letter()) {
                pos += 1;
                while s.fl(pos).is_letter() {
                    pos += 1;
                }
                s.add(pos);
                continue;
            }
            // \p{N}{1,max_digits}
            if fl.is_number() {
                let mut first = pos;
                while s.fl(pos).is_number() {
                    pos += 1;
                    if pos - first >= max_digits {
                        s.add(pos);
                        first = pos;
                    }
                }
                s.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let space = usize::from(cpt == Some(' '));
            let mut f2 = if space == 1 { s.fl(pos + 1) } else { fl };
            if not_wln(f2) && fl.any() {
                pos += space;
                while not_wln(f2) && f2.any() {
                    pos += 1;
                    f2 = s.fl(pos);
                }
                while is_rn(s.cpt(pos)) {
                    pos += 1;
                }
                s.add(pos);
                continue;
            }
            let mut nws = 0usize;
            let mut last_rn = 0usize;
            while s.fl(pos + nws).is_whitespace() {
                if is_rn(s.cpt(pos + nws)) {
                    last_rn = pos + nws + 1;
                }
                nws += 1;
            }
            if last_rn > 0 {
                // \s*[\r\n]+
                pos = last_rn;
                s.add(pos);
                continue;
            }
            if nws > 1 && s.cpt(pos + nws).is_some() {
                // \s+(?!\S)
                pos += nws - 1;
                s.add(pos);
                continue;
            }
            if nws > 0 {
                pos += nws;
                s.add(pos);
                continue;
            }
            pos += 1;
            s.add(pos);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreRegex, text: &str) -> Vec<&str> {
        split(kind, text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn gpt2_family() {
        assert_eq!(words(PreRegex::Gpt2, "Hello world's  end 123"), ["Hello", " world", "'s", " ", " end", " 123"]);
        assert_eq!(words(PreRegex::DigitsGpt2, "ab 123"), ["ab", " ", "1", "2", "3"]);
    }

    #[test]
    fn llama3_family() {
        assert_eq!(words(PreRegex::Llama3, "I'M 12345!\n\n x"), ["I", "'M", " ", "123", "45", "!\n\n", " x"]);
        assert_eq!(words(PreRegex::Qwen2, "a 123"), ["a", " ", "1", "2", "3"]);
    }
}
