//! `quantize` against what upstream's quantizers wrote for the same tiny model, and `model synth`:
//! complete, re-readable, deterministic, the same ternary weights in every format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datasets::presets::Preset;
use harness::convert::{
    self, dequantize, synth_tensors, weight_scale, QuantizeOptions, SynthOptions,
};
use harness::gguf::{Gguf, TensorType, Value};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/golden")
        .join(name)
}

/// A fresh path in the temp directory, unique per test and process.
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ternbench-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn quantize(input: &Path, name: &str, target: &str, embedding: Option<&str>) -> PathBuf {
    let out = temp(name);
    let opts = QuantizeOptions {
        target: target.into(),
        embedding: embedding.map(String::from),
    };
    convert::quantize(input, &out, &opts).unwrap();
    out
}

fn metadata_map(g: &Gguf) -> BTreeMap<String, Value> {
    g.metadata.iter().cloned().collect()
}

#[test]
fn tq2_0_from_f16_is_byte_identical_to_llama_cpp() {
    let out = quantize(&golden("tiny-f16.gguf"), "tq2.gguf", "tq2_0", Some("q6_K"));
    let ours = Gguf::open(&out).unwrap();
    let theirs = Gguf::open(golden("tiny-tq2.gguf")).unwrap();
    assert_eq!(ours.tensors.len(), theirs.tensors.len());
    for t in &theirs.tensors {
        let o = ours
            .tensor(&t.name)
            .unwrap_or_else(|| panic!("{} missing", t.name));
        assert_eq!((o.ty, &o.dims), (t.ty, &t.dims), "{}", t.name);
        assert!(ours.data(o) == theirs.data(t), "{}: bytes differ", t.name);
    }
    // Same keys and values (llama.cpp appends the two quantizer keys; order aside).
    assert_eq!(metadata_map(&ours), metadata_map(&theirs));
    std::fs::remove_file(out).unwrap();
}

#[test]
fn i2_s_from_f16_matches_bitnet_cpp() {
    let out = quantize(&golden("tiny-f16.gguf"), "i2s.gguf", "i2_s", None);
    let ours = Gguf::open(&out).unwrap();
    let theirs = Gguf::open(golden("tiny-i2s.gguf")).unwrap();
    assert!(ours.bitnet_fork_types);
    assert_eq!(ours.tensors.len(), theirs.tensors.len());
    for t in &theirs.tensors {
        let o = ours.tensor(&t.name).unwrap();
        assert_eq!(
            (o.ty, &o.dims, o.bytes),
            (t.ty, &t.dims, t.bytes),
            "{}",
            t.name
        );
        let (a, b) = (ours.data(o), theirs.data(t));
        if t.ty == TensorType::I2S {
            // Codes and the f32 scale; bitnet.cpp leaves tail bytes 4..32 uninitialised.
            let codes = (t.elements() / 4) as usize;
            assert!(
                a[..codes + 4] == b[..codes + 4],
                "{}: codes or scale differ",
                t.name
            );
        } else {
            assert!(a == b, "{}: bytes differ", t.name);
        }
    }
    assert_eq!(metadata_map(&ours), metadata_map(&theirs));
    std::fs::remove_file(out).unwrap();
}

#[test]
fn quantized_ternary_formats_dequantize_to_the_source() {
    let src = Gguf::open(golden("tiny-f16.gguf")).unwrap();
    for target in ["tq1_0", "tq2_0", "i2_s", "f16"] {
        let out = quantize(
            &golden("tiny-f16.gguf"),
            &format!("{target}.gguf"),
            target,
            None,
        );
        let g = Gguf::open(&out).unwrap();
        assert_eq!(
            g.get("general.file_type").and_then(Value::as_u64),
            convert::file_type(convert::tensor_type(target).unwrap()).map(u64::from)
        );
        for t in &src.tensors {
            let o = g.tensor(&t.name).unwrap();
            assert_eq!(o.dims, t.dims);
            assert_eq!(
                dequantize(&g, o).unwrap(),
                dequantize(&src, t).unwrap(),
                "{target} {}",
                t.name
            );
        }
        std::fs::remove_file(out).unwrap();
    }
}

#[test]
fn bad_input_is_refused_naming_the_file() {
    let opts = |t: &str| QuantizeOptions {
        target: t.into(),
        embedding: None,
    };
    let input = golden("tiny-f16.gguf");
    let out = temp("bad.gguf");
    let err = convert::quantize(&input, &out, &opts("q3_xs"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny-f16.gguf") && err.contains("q3_xs"),
        "{err}"
    );

    // A truncated file: the reader's error names it; no output is left behind.
    let bytes = std::fs::read(&input).unwrap();
    let cut = temp("truncated.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = convert::quantize(&cut, &out, &opts("tq2_0"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.gguf"), "{err}");
    assert!(!out.exists());

    // TL1 needs a tiling preset for the shape; the tiny model has none.
    let err = convert::quantize(&input, &out, &opts("tl1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny-f16.gguf") && err.contains("blk.0.") && err.contains("preset"),
        "{err}"
    );
    assert!(!out.exists());

    // Writing over the input is refused (it is memory-mapped while we write).
    let err = convert::quantize(&cut, &cut, &opts("tq2_0"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.gguf"), "{err}");
    assert!(cut.exists());

    // Non-ternary weights (q4_0 stores +s as 7s/8) cannot become I2_S.
    let q4 = temp("q4.gguf");
    convert::synth(&synth_opts(tiny(), "q4_0", 1), &q4).unwrap();
    let err = convert::quantize(&q4, &out, &opts("i2_s"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("q4.gguf") && err.contains("blk.0.") && err.contains("ternar"),
        "{err}"
    );
    assert!(!out.exists());
    for p in [cut, q4] {
        std::fs::remove_file(p).unwrap();
    }
}

/// A two-layer model of the tiny golden shapes, in bitnet.cpp's 2B4T architecture.
fn tiny() -> Preset {
    Preset {
        name: "tiny".into(),
        source: "test".into(),
        arch: "bitnet-b1.58".into(),
        vocab: 1000,
        hidden: 256,
        ffn: 512,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        rope_base: 500000.0,
        context: 4096,
    }
}

/// One layer of BitNet b1.58 2B4T's shapes (which have TL1/TL2 presets), small vocabulary.
fn one_layer_2b4t() -> Preset {
    let mut p = datasets::presets::find("bitnet-b1.58-2b-4t")
        .unwrap()
        .unwrap();
    p.layers = 1;
    p.vocab = 256;
    p
}

fn synth_opts(preset: Preset, format: &str, seed: u64) -> SynthOptions {
    SynthOptions {
        preset,
        format: format.into(),
        seed,
        embedding: None,
    }
}

fn synth_bytes(opts: &SynthOptions) -> Vec<u8> {
    let mut out = Vec::new();
    convert::synth_to(opts, &mut out, Path::new("mem.gguf")).unwrap();
    out
}

fn parse(bytes: Vec<u8>) -> Gguf {
    Gguf::parse(
        PathBuf::from("mem.gguf"),
        harness::gguf::Bytes::Owned(bytes),
    )
    .unwrap()
}

#[test]
fn synth_writes_every_tensor_deterministically() {
    let p = tiny();
    for format in ["tq1_0", "tq2_0", "i2_s", "f16", "q4_0", "q8_0"] {
        let opts = synth_opts(p.clone(), format, 7);
        let a = synth_bytes(&opts);
        assert!(a == synth_bytes(&opts), "{format}: not deterministic");
        assert!(
            a != synth_bytes(&synth_opts(p.clone(), format, 8)),
            "{format}: seed ignored"
        );
        let g = parse(a);
        let ty = convert::tensor_type(format).unwrap();
        assert_eq!(g.architecture(), Some("bitnet-b1.58"));
        assert_eq!(
            g.get("bitnet-b1.58.vocab_size").and_then(Value::as_u64),
            Some(1000)
        );
        assert_eq!(
            g.get("bitnet-b1.58.rope.dimension_count")
                .and_then(Value::as_u64),
            Some(64)
        );
        assert_eq!(
            g.get("tokenizer.ggml.model").and_then(Value::as_str),
            Some("no_vocab")
        );
        assert_eq!(g.tensors.len(), 2 + 11 * p.layers);
        assert_eq!(g.tensor("token_embd.weight").unwrap().ty, TensorType::F16);
        assert_eq!(g.tensor("token_embd.weight").unwrap().dims, vec![256, 1000]);
        for l in 0..p.layers {
            for (m, rows, cols) in p.layer_matrices() {
                let t = g.tensor(&format!("blk.{l}.{m}.weight")).unwrap();
                assert_eq!(
                    (t.ty, &t.dims),
                    (ty, &vec![cols as u64, rows as u64]),
                    "{m}"
                );
            }
            for (norm, n) in [
                ("attn_norm", 256),
                ("attn_sub_norm", 256),
                ("ffn_norm", 256),
                ("ffn_sub_norm", 512),
            ] {
                let t = g.tensor(&format!("blk.{l}.{norm}.weight")).unwrap();
                assert_eq!((t.ty, &t.dims), (TensorType::F32, &vec![n]));
                assert!(dequantize(&g, t).unwrap().iter().all(|&v| v == 1.0));
            }
        }
        // The directory is what synth_tensors promises.
        let dir = synth_tensors(&p, ty, TensorType::F16);
        let names: Vec<_> = g.tensors.iter().map(|t| &t.name).collect();
        assert_eq!(names, dir.iter().map(|t| &t.name).collect::<Vec<_>>());
    }
}

#[test]
fn synth_formats_hold_the_same_ternary_weights() {
    let p = tiny();
    let reference = parse(synth_bytes(&synth_opts(p.clone(), "i2_s", 3)));
    let q = reference.tensor("blk.1.ffn_down.weight").unwrap();
    let w = dequantize(&reference, q).unwrap();
    let s = weight_scale(512);
    let count = |v: f32| w.iter().filter(|&&x| x == v).count() as f64 / w.len() as f64;
    for v in [-s, 0.0, s] {
        assert!((count(v) - 1.0 / 3.0).abs() < 0.02, "{v}: {}", count(v));
    }
    // The bitnet arch defaults to a Q6_K embedding, as llama.cpp's quantizer writes it.
    let mut bitnet = p.clone();
    bitnet.arch = "bitnet".into();
    for (preset, format) in [(&p, "tq1_0"), (&p, "tq2_0"), (&p, "f16"), (&bitnet, "i2_s")] {
        let g = parse(synth_bytes(&synth_opts(preset.clone(), format, 3)));
        for t in reference
            .tensors
            .iter()
            .filter(|t| t.name != "token_embd.weight")
        {
            let o = g.tensor(&t.name).unwrap();
            assert_eq!(
                dequantize(&g, o).unwrap(),
                dequantize(&reference, t).unwrap(),
                "{format} {}",
                t.name
            );
        }
        let e = g.tensor("token_embd.weight").unwrap();
        let want = if preset.arch == "bitnet" {
            TensorType::Q6K
        } else {
            TensorType::F16
        };
        assert_eq!(e.ty, want);
    }
}

#[test]
fn synth_tl_writes_preset_shapes_with_scale_tensors() {
    let err = convert::synth_to(
        &synth_opts(tiny(), "tl2", 1),
        Vec::new(),
        Path::new("x.gguf"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("x.gguf") && err.contains("preset"), "{err}");

    let p = one_layer_2b4t();
    let i2s = synth_bytes(&synth_opts(p.clone(), "i2_s", 5));
    let reference = parse(i2s.clone());
    for format in ["tl1", "tl2"] {
        let path = temp(&format!("synth-{format}.gguf"));
        convert::synth(&synth_opts(p.clone(), format, 5), &path).unwrap();
        let g = Gguf::open(&path).unwrap();
        assert!(g.bitnet_fork_types);
        let q = g.tensor("blk.0.attn_q.weight").unwrap();
        assert_eq!(q.ty, convert::tensor_type(format).unwrap());
        // The fork's separate scale tensor follows its weight and agrees with the tail.
        let scale = g.tensor("blk.0.attn_q.weight_scale").unwrap();
        assert_eq!((scale.ty, &scale.dims), (TensorType::F32, &vec![1]));
        assert_eq!(dequantize(&g, scale).unwrap(), vec![weight_scale(2560)]);
        for t in &reference.tensors {
            let o = g.tensor(&t.name).unwrap();
            assert_eq!(
                dequantize(&g, o).unwrap(),
                dequantize(&reference, t).unwrap(),
                "{format} {}",
                t.name
            );
        }
        // Back to I2_S: the scale tensors go, and the file is the one synth writes directly.
        let back = quantize(&path, &format!("back-{format}.gguf"), "i2_s", None);
        assert!(std::fs::read(&back).unwrap() == i2s, "{format} -> i2_s");
        for f in [path, back] {
            std::fs::remove_file(f).unwrap();
        }
    }
}
