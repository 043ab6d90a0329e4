//! Tokenizers: the tiny model's SentencePiece-style vocabulary worked by hand, and byte-level BPE
//! and SentencePiece models cross-checked against the libraries that trained them
//! (datasets/golden/tokenizer, made by make_tokenizer_golden.py).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use harness::gguf::Gguf;
use harness::tokenizer::{
    Model, PreTokenizer, StreamDecoder, TokenType, Tokenizer, TokenizerError, TokenizerSpec,
};
use proptest::prelude::*;
use serde_json::Value as Json;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/golden")
        .join(name)
}

fn tiny() -> Tokenizer {
    let g = Gguf::open(golden("tiny-tq2.gguf")).unwrap();
    Tokenizer::from_gguf(&g).unwrap()
}

fn json(name: &str) -> Json {
    let text = std::fs::read_to_string(golden(&format!("tokenizer/{name}"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn types(v: &Json) -> Vec<TokenType> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| TokenType::from_id(x.as_i64().unwrap()))
        .collect()
}

fn bpe(pre: PreTokenizer) -> (Tokenizer, Json) {
    let d = json("bpe.json");
    let mut spec = TokenizerSpec::bpe(strings(&d["tokens"]), strings(&d["merges"]), pre);
    spec.types = types(&d["types"]);
    spec.bos = d["bos"].as_u64().map(|x| x as u32);
    spec.eos = d["eos"].as_u64().map(|x| x as u32);
    (Tokenizer::new(spec).unwrap(), d)
}

fn spm() -> (Tokenizer, Json) {
    let d = json("spm.json");
    let scores = d["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let mut spec = TokenizerSpec::spm(strings(&d["tokens"]), scores, types(&d["types"]));
    spec.bos = d["bos"].as_u64().map(|x| x as u32);
    spec.eos = d["eos"].as_u64().map(|x| x as u32);
    spec.unk = d["unk"].as_u64().map(|x| x as u32);
    (Tokenizer::new(spec).unwrap(), d)
}

/// Compare every case; report all mismatches at once.
fn check_cases(tok: &Tokenizer, cases: &Json, parse_special: bool, what: &str) {
    let mut bad = Vec::new();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 3, "{what}: too few cases");
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        let got = tok.encode_with(text, false, parse_special);
        if got != want {
            bad.push(format!("{text:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
}

// ▁ (U+2581) is E2 96 81; the tiny vocabulary has no ▁ token, so it falls back to bytes.
// Byte b is token 3 + b.
const SPACE: [u32; 3] = [3 + 0xE2, 3 + 0x96, 3 + 0x81];

fn with_space(rest: &[u32]) -> Vec<u32> {
    let mut v = SPACE.to_vec();
    v.extend_from_slice(rest);
    v
}

#[test]
fn tiny_vocabulary_metadata() {
    let t = tiny();
    assert_eq!(t.model(), Model::Spm);
    assert_eq!(t.vocab_size(), 1000);
    assert_eq!((t.bos(), t.eos(), t.unk()), (Some(1), Some(2), Some(0)));
    assert!(t.wants_bos());
    assert!(t.is_eog(2) && !t.is_eog(1) && !t.is_eog(271));
    assert_eq!(t.token_text(271), Some("t12"));
    assert_eq!(t.token_type(1), Some(TokenType::Control));
    assert_eq!(t.token_type(3 + 0x41), Some(TokenType::Byte));
    assert_eq!(t.token_id("<0x41>"), Some(3 + 0x41));
}

#[test]
fn tiny_vocabulary_hand_worked_encodings() {
    let t = tiny();
    // "▁t12": only "t1" (260) is a vocabulary bigram; then "t1"+"2" = "t12" (271); "▁" has no
    // token of its own.
    assert_eq!(t.encode("t12", false), with_space(&[271]));
    assert_eq!(
        t.encode("t12", true),
        [&[1][..], &with_space(&[271])].concat()
    );
    // "t1" and "t2" both merge (equal scores: leftmost first, then the other); "t1t2" is no token.
    assert_eq!(t.encode("t1t2", false), with_space(&[260, 261]));
    // t7 -> t74 -> t740 (= 259 + 740 = 999), the last token of the vocabulary.
    assert_eq!(t.encode("t740", false), with_space(&[999]));
    // "t741" is not a token: t74 (333) stays and "1" falls back to byte 0x31.
    assert_eq!(t.encode("t741", false), with_space(&[333, 3 + 0x31]));
    // Neither "t" nor digits alone are tokens.
    assert_eq!(
        t.encode("t 5", false),
        [&SPACE[..], &[3 + 0x74], &SPACE[..], &[3 + 0x35]].concat()
    );
    // Each space becomes ▁ (three byte tokens).
    assert_eq!(
        t.encode("a b", false),
        [&SPACE[..], &[3 + 0x61], &SPACE[..], &[3 + 0x62]].concat()
    );
    // Non-ASCII: UTF-8 bytes of é (C3 A9).
    assert_eq!(t.encode("é", false), with_space(&[3 + 0xC3, 3 + 0xA9]));
    assert_eq!(t.encode("", false), Vec::<u32>::new());
    assert_eq!(t.encode("", true), vec![1]);
    // Control tokens are not produced from text unless asked.
    assert_eq!(
        t.encode("<s>", false),
        with_space(&[3 + 0x3C, 3 + 0x73, 3 + 0x3E])
    );
    assert_eq!(t.encode_with("<s>", false, true), vec![1]);
    // Text after a special token gets its own space prefix (llama.cpp).
    assert_eq!(
        t.encode_with("t1</s>t2", false, true),
        [&with_space(&[260])[..], &[2], &with_space(&[261])].concat()
    );
}

#[test]
fn tiny_vocabulary_round_trips() {
    let t = tiny();
    for text in [
        "t12 t740 t741 hello",
        "  leading and trailing  ",
        "Grüße aus München, 日本語, emoji 🦙 and a tab\tand\nnewlines\r\n",
        "<s> and </s> written out",
        "",
        " ",
    ] {
        for bos in [false, true] {
            assert_eq!(t.decode(&t.encode(text, bos)), text, "{text:?}");
        }
    }
    assert_eq!(t.decode(&[1, 271, 2]), "t12");
    assert_eq!(t.decode(&with_space(&[271, 260])), "t12t1");
}

#[test]
fn streaming_holds_back_partial_characters() {
    let t = tiny();
    let ids = t.encode("é🦙!", true);
    let mut d = StreamDecoder::new(&t);
    let parts: Vec<String> = ids.iter().map(|&id| d.push(&t, id)).collect();
    assert_eq!(d.finish(), "");
    // BOS, then ▁ (3 bytes), é (2), 🦙 (4), "!".
    let want: Vec<&str> = vec!["", "", "", "", "", "é", "", "", "", "🦙", "!"];
    assert_eq!(parts, want);
    // An incomplete character at the end becomes one U+FFFD; a stray byte too.
    let mut d = StreamDecoder::new(&t);
    assert_eq!(d.push(&t, 3 + 0xF0), "");
    assert_eq!(d.push(&t, 3 + 0x9F), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    assert_eq!(t.decode(&[3 + 0x41, 3 + 0x80, 3 + 0x42]), "A\u{FFFD}B");
    assert_eq!(t.piece(3 + 0xC3), &[0xC3]);
    assert_eq!(t.piece(1), b"");
    assert_eq!(t.piece(271), b"t12");
}

#[test]
fn bpe_llama3_matches_huggingface() {
    let (t, d) = bpe(PreTokenizer::Llama3);
    check_cases(&t, &d["cases_llama3"], false, "llama3");
    check_cases(&t, &d["cases_special"], true, "llama3 special");
}

#[test]
fn bpe_gpt2_matches_huggingface() {
    let (t, d) = bpe(PreTokenizer::Gpt2);
    check_cases(&t, &d["cases_gpt2"], false, "gpt2");
}

#[test]
fn spm_matches_sentencepiece() {
    let (t, d) = spm();
    check_cases(&t, &d["cases"], false, "sentencepiece");
}

#[test]
fn bpe_specials_and_eog() {
    let (t, _) = bpe(PreTokenizer::Llama3);
    let eot = t.token_id("<|eot_id|>").unwrap();
    // End of turn is found by its text, as llama.cpp does when the file names none.
    assert!(t.is_eog(eot) && t.is_eog(t.eos().unwrap()) && !t.is_eog(t.bos().unwrap()));
    assert!(t.wants_bos());
    let plain = t.encode("<|eot_id|>", false);
    assert!(
        !plain.contains(&eot),
        "control tokens come from text only when asked"
    );
    assert_eq!(t.decode(&plain), "<|eot_id|>");
    assert_eq!(
        t.encode_with("<|eot_id|>", true, true),
        vec![t.bos().unwrap(), eot]
    );
    assert_eq!(t.decode(&[t.bos().unwrap(), eot]), "");
}

#[test]
fn user_defined_tokens_are_split_out_first() {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", "<tool>", "▁a", "b"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let mut types = vec![
        TokenType::Unknown,
        TokenType::Control,
        TokenType::Control,
        TokenType::UserDefined,
        TokenType::Normal,
        TokenType::Normal,
    ];
    types.extend([TokenType::Byte; 256]);
    let t = Tokenizer::new(TokenizerSpec {
        bos: Some(1),
        eos: Some(2),
        unk: Some(0),
        ..TokenizerSpec::spm(tokens, vec![], types)
    })
    .unwrap();
    // "<tool>" is split out even without parse_special; each text part gets a space prefix.
    assert_eq!(t.encode("a<tool>a", false), vec![4, 3, 4]);
    assert_eq!(t.decode(&[4, 3, 4]), "a<tool> a");
    // "b" has no ▁b token: ▁ then b.
    assert_eq!(t.encode("b", false), vec![6 + 0xE2, 6 + 0x96, 6 + 0x81, 5]);
}

#[test]
fn bad_specs_are_errors() {
    let e = Tokenizer::new(TokenizerSpec::default()).unwrap_err();
    assert!(matches!(e, TokenizerError::Empty));
    let e = Tokenizer::new(TokenizerSpec {
        eos: Some(5),
        ..TokenizerSpec::spm(vec!["a".into()], vec![], vec![])
    })
    .unwrap_err();
    assert!(matches!(e, TokenizerError::IdOutOfRange { key: "eos", .. }));
    let e =
        Tokenizer::new(TokenizerSpec::spm(vec!["a".into()], vec![0.0, 1.0], vec![])).unwrap_err();
    assert!(matches!(e, TokenizerError::Length { .. }));
    let e = Tokenizer::new(TokenizerSpec::bpe(
        vec!["a".into()],
        vec!["ab".into()],
        PreTokenizer::Gpt2,
    ))
    .unwrap_err();
    assert!(matches!(e, TokenizerError::BadMerge { index: 0, .. }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trips_arbitrary_text(text in "\\PC*|[ \\t\\n\\r a-z0-9'.,]{0,40}") {
        // U+2581 reads as a space to SentencePiece, so it cannot round-trip there.
        let t = tiny();
        let (s, _) = spm();
        let (b, _) = bpe(PreTokenizer::Llama3);
        let (g, _) = bpe(PreTokenizer::Gpt2);
        if !text.contains('\u{2581}') {
            prop_assert_eq!(t.decode(&t.encode(&text, true)), text.clone());
            prop_assert_eq!(s.decode(&s.encode(&text, true)), text.clone());
        }
        prop_assert_eq!(b.decode(&b.encode(&text, true)), text.clone());
        prop_assert_eq!(g.decode(&g.encode(&text, false)), text.clone());
        // Streaming gives the same text as decoding at once.
        let ids = b.encode(&text, false);
        let mut d = StreamDecoder::new(&b);
        let mut streamed: String = ids.iter().map(|&id| d.push(&b, id)).collect();
        streamed.push_str(&d.finish());
        prop_assert_eq!(streamed, text);
    }
}

/// llama.cpp's own tokenizer test vectors (models/ggml-vocab-*.gguf with .inp/.out), too large
/// to keep here: set TERNBENCH_LLAMA_VOCABS to a folder holding them to run this.
#[test]
fn llama_cpp_vocab_vectors() {
    let Some(dir) = std::env::var_os("TERNBENCH_LLAMA_VOCABS") else {
        eprintln!("TERNBENCH_LLAMA_VOCABS not set: skipped");
        return;
    };
    let dir = PathBuf::from(dir);
    let mut ran = 0;
    for name in ["llama-spm", "gpt-2", "llama-bpe"] {
        let gguf = dir.join(format!("ggml-vocab-{name}.gguf"));
        if !gguf.exists() {
            continue;
        }
        let t = Tokenizer::from_gguf(&Gguf::open(&gguf).unwrap()).unwrap();
        let inp = std::fs::read_to_string(gguf.with_extension("gguf.inp")).unwrap();
        let out = std::fs::read_to_string(gguf.with_extension("gguf.out")).unwrap();
        let sep = "\n__ggml_vocab_test__\n";
        // A trailing separator ends the list (llama.cpp's reader).
        let texts: Vec<&str> = inp.strip_suffix(sep).unwrap_or(&inp).split(sep).collect();
        let want: Vec<Vec<u32>> = out
            .lines()
            .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
            .collect();
        assert_eq!(texts.len(), want.len(), "{name}");
        let mut bad = Vec::new();
        for (text, want) in texts.iter().zip(&want) {
            let got = t.encode(text, false);
            if &got != want {
                bad.push(format!("{text:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(bad.is_empty(), "{name}:\n{}", bad.join("\n"));
        ran += 1;
    }
    eprintln!("llama.cpp vocabularies checked: {ran}");
}

#[test]
fn ignore_merges_takes_whole_words_from_the_vocabulary() {
    let tokens: Vec<String> = ["a", "b", "c", "bc", "ab", "abc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let merges = vec!["b c".to_string(), "a b".to_string()];
    // Merging alone stops at a + bc ("a bc" is no merge); Llama 3 (llama.cpp) takes "abc" whole.
    let gpt2 = Tokenizer::new(TokenizerSpec::bpe(
        tokens.clone(),
        merges.clone(),
        PreTokenizer::Gpt2,
    ))
    .unwrap();
    assert_eq!(gpt2.encode("abc", false), vec![0, 3]);
    let llama3 = Tokenizer::new(TokenizerSpec::bpe(tokens, merges, PreTokenizer::Llama3)).unwrap();
    assert_eq!(llama3.encode("abc", false), vec![5]);
    assert_eq!(llama3.encode("abcab", false), vec![0, 3, 4]);
}
