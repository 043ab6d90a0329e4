//! `ternbench model run` and `model logits` end to end on the tiny golden models.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn golden(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/golden")
        .join(name)
        .display()
        .to_string()
}

fn ternbench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ternbench"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn logits_json_reproduces_llama_cpp() {
    let gold: Value =
        serde_json::from_str(&std::fs::read_to_string(golden("tiny-tq2-logits.json")).unwrap())
            .unwrap();
    let tokens: Vec<String> = gold["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    let out = json(&ternbench(&[
        "model",
        "logits",
        "--model",
        &golden("tiny-tq2.gguf"),
        "--tokens",
        &tokens.join(","),
        "--json",
    ]));
    assert_eq!(out["tokens"], gold["tokens"]);
    let (ours, theirs) = (
        out["logits"].as_array().unwrap(),
        gold["logits"].as_array().unwrap(),
    );
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        let (o, t) = (o.as_array().unwrap(), t.as_array().unwrap());
        assert_eq!(o.len(), 1000);
        let (mut num, mut den) = (0.0, 0.0);
        for (a, b) in o.iter().zip(t) {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            num += (a - b) * (a - b);
            den += b * b;
        }
        assert!((num / den).sqrt() < 1e-3);
    }
}

#[test]
fn run_json_carries_the_documented_fields() {
    let out = json(&ternbench(&[
        "model",
        "run",
        "--model",
        &golden("tiny-b158.gguf"),
        "-p",
        "5",
        "-n",
        "3",
        "--threads",
        "1",
        "--repetitions",
        "2",
        "--json",
    ]));
    for key in [
        "model",
        "format",
        "kernel",
        "threads",
        "pp_tps",
        "tg_tps",
        "ttft_ms",
        "peak_rss_bytes",
        "bytes_per_token",
        "bandwidth_fraction",
    ] {
        assert!(!out[key].is_null(), "{key} missing in {out}");
    }
    assert_eq!(out["model"], "tiny-b158.gguf");
    assert_eq!(out["arch"], "bitnet-b1.58");
    assert_eq!(out["format"], "i2_s");
    assert!(out["kernel"].as_str().unwrap().starts_with("i2_s/"));
    assert_eq!(out["threads"], 1);
    assert_eq!(
        (out["prompt_tokens"].as_u64(), out["gen_tokens"].as_u64()),
        (Some(5), Some(3))
    );
    assert!(out["pp_tps"].as_f64().unwrap() > 0.0 && out["tg_tps"].as_f64().unwrap() > 0.0);
    // Every I2_S matrix and the F16 embedding: the bytes one decode step reads.
    let file = std::fs::metadata(golden("tiny-b158.gguf")).unwrap().len();
    let per_token = out["bytes_per_token"].as_u64().unwrap();
    assert!(
        per_token > file * 8 / 10 && per_token < file,
        "{per_token} of {file}"
    );
    assert_eq!(out["generated"].as_array().unwrap().len(), 3);
    assert_eq!(
        out["checks"].as_array().unwrap().len(),
        2,
        "{}",
        out["checks"]
    );
}

#[test]
fn a_prompt_is_tokenized_and_generation_is_reproducible() {
    let run = |seed: &str| {
        json(&ternbench(&[
            "model",
            "run",
            "--model",
            &golden("tiny-tq2.gguf"),
            "--prompt",
            "hello world",
            "-n",
            "6",
            "--temp",
            "0.9",
            "--sample-seed",
            seed,
            "--repetitions",
            "1",
            "--json",
        ]))
    };
    let (a, b, c) = (run("7"), run("7"), run("8"));
    assert!(
        a["text"].as_str().unwrap().starts_with("hello world"),
        "{}",
        a["text"]
    );
    assert_eq!(a["generated"], b["generated"]);
    assert_ne!(a["generated"], c["generated"]);
    // "▁hello▁world" is not one token of the 1000-token vocabulary: several prompt tokens.
    assert!(a["prompt_tokens"].as_u64().unwrap() > 2);
}

#[test]
fn bad_requests_are_clear_errors() {
    let out = ternbench(&["model", "run", "--model", "/nonexistent.gguf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.gguf"));
    let out = ternbench(&[
        "model",
        "logits",
        "--model",
        &golden("tiny-tq2.gguf"),
        "--tokens",
        "5000",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token 5000"));
    let out = ternbench(&[
        "model",
        "run",
        "--model",
        &golden("tiny-tq2.gguf"),
        "--kv-type",
        "q8",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kv-type q8"));
}
