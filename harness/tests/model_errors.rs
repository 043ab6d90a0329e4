//! Bad model files and bad requests give errors naming the file, tensor or key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use backends::{CpuBackend, CpuConfig};
use harness::gguf::{Bytes, Gguf, GgufWriter, NewTensor, Value};
use harness::model::{LoadOptions, Logits, Model, ModelError};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/golden")
        .join(name)
}

/// tiny-tq2.gguf rewritten with its metadata and tensor list edited.
fn edited(meta: impl Fn(&mut Vec<(String, Value)>), keep: impl Fn(&str) -> bool) -> Gguf {
    edited_data(meta, keep, |_, _| {})
}

fn edited_data(
    meta: impl Fn(&mut Vec<(String, Value)>),
    keep: impl Fn(&str) -> bool,
    data: impl Fn(&str, &mut Vec<u8>),
) -> Gguf {
    let g = Gguf::open(golden("tiny-tq2.gguf")).unwrap();
    let mut metadata = g.metadata.clone();
    meta(&mut metadata);
    let kept: Vec<_> = g.tensors.iter().filter(|t| keep(&t.name)).collect();
    let list: Vec<NewTensor> = kept
        .iter()
        .map(|t| NewTensor {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let mut w = GgufWriter::new(Vec::new(), &metadata, &list).unwrap();
    for t in &kept {
        let mut bytes = g.data(t).to_vec();
        data(&t.name, &mut bytes);
        w.write_data(&bytes).unwrap();
    }
    Gguf::parse(
        PathBuf::from("edited.gguf"),
        Bytes::Owned(w.finish().unwrap()),
    )
    .unwrap()
}

fn load(g: &Gguf) -> Result<Model, ModelError> {
    let backend = CpuBackend::new(CpuConfig {
        threads: 1,
        kernel: None,
        pin: false,
    })
    .unwrap();
    Model::load(
        g,
        Box::new(backend),
        &LoadOptions {
            context: 8,
            ..Default::default()
        },
    )
}

fn message(g: &Gguf) -> String {
    match load(g) {
        Ok(_) => panic!("the edited model loaded"),
        Err(e) => e.to_string(),
    }
}

fn set(key: &'static str, v: Value) -> impl Fn(&mut Vec<(String, Value)>) {
    move |m| {
        m.retain(|(k, _)| k != key);
        m.push((key.to_string(), v.clone()));
    }
}

#[test]
fn an_unknown_architecture_is_named() {
    let g = edited(
        set("general.architecture", Value::String("llama".into())),
        |_| true,
    );
    let m = message(&g);
    assert!(m.contains("edited.gguf") && m.contains("'llama'"), "{m}");
}

#[test]
fn a_missing_tensor_is_named() {
    let g = edited(|_| {}, |n| n != "blk.1.ffn_up.weight");
    let m = message(&g);
    assert!(
        m.contains("edited.gguf") && m.contains("blk.1.ffn_up.weight") && m.contains("missing"),
        "{m}"
    );
}

#[test]
fn a_missing_key_is_named() {
    let g = edited(|m| m.retain(|(k, _)| k != "bitnet.block_count"), |_| true);
    let m = message(&g);
    assert!(
        m.contains("bitnet.block_count") && m.contains("missing"),
        "{m}"
    );
}

#[test]
fn shapes_that_disagree_with_the_metadata_are_named() {
    let g = edited(set("bitnet.feed_forward_length", Value::U32(768)), |_| true);
    let m = message(&g);
    assert!(
        m.contains("blk.0.ffn_gate.weight") && m.contains("[256, 768]"),
        "{m}"
    );
    let g = edited(set("bitnet.attention.head_count_kv", Value::U32(3)), |_| {
        true
    });
    let m = message(&g);
    assert!(
        m.contains("head_count_kv") && m.contains("does not divide"),
        "{m}"
    );
}

#[test]
fn a_norm_of_the_wrong_length_is_named() {
    let g = edited(set("bitnet.embedding_length", Value::U32(512)), |_| true);
    let m = message(&g);
    assert!(
        m.contains("edited.gguf") && m.contains("token_embd.weight"),
        "{m}"
    );
}

#[test]
fn tokens_outside_the_vocabulary_and_the_context_are_refused() {
    let g = Gguf::open(golden("tiny-tq2.gguf")).unwrap();
    let mut m = load(&g).unwrap();
    let e = m.forward(&[1, 1000], Logits::Last).unwrap_err().to_string();
    assert!(e.contains("token 1000") && e.contains("1000"), "{e}");
    assert_eq!(m.pos, 0, "a refused batch must not advance the position");
    m.forward(&[1; 8], Logits::Last).unwrap();
    let e = m.forward(&[1], Logits::Last).unwrap_err().to_string();
    assert!(e.contains("position 9") && e.contains("8 positions"), "{e}");
}

#[test]
fn nan_weights_are_refused_not_timed() {
    // A TQ2_0 block ends with its f16 scale; make the first one of blk.0's ffn_down NaN.
    let g = edited_data(
        |_| {},
        |_| true,
        |name, bytes| {
            if name == "blk.0.ffn_down.weight" {
                bytes[64..66].copy_from_slice(&0x7e00u16.to_le_bytes());
            }
        },
    );
    let mut m = load(&g).unwrap();
    let e = m.forward(&[1, 2, 3], Logits::Last).unwrap_err().to_string();
    // The NaN surfaces where the next matmul quantizes its input, in the next layer.
    assert!(
        e.contains("blk.1.attn_q") && e.contains("not finite"),
        "{e}"
    );
    assert_eq!(m.pos, 0);
}
