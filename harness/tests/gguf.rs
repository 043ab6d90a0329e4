//! The GGUF reader on the real files upstream wrote, the writer round trip, and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use harness::gguf::{Bytes, Gguf, GgufErrorKind, GgufWriter, NewTensor, TensorType, Value};
use proptest::prelude::*;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/golden")
        .join(name)
}

#[test]
fn reads_llama_cpp_and_bitnet_cpp_files() {
    let tq2 = Gguf::open(golden("tiny-tq2.gguf")).unwrap();
    assert_eq!((tq2.version, tq2.architecture()), (3, Some("bitnet")));
    assert_eq!(tq2.tensors.len(), 24);
    assert_eq!(tq2.tensor("token_embd.weight").unwrap().ty, TensorType::Q6K);
    let q = tq2.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(
        (q.ty, q.dims.as_slice(), q.bytes),
        (TensorType::Tq2_0, &[256u64, 256][..], 256 * 66)
    );
    assert_eq!(
        tq2.get("bitnet.embedding_length").and_then(Value::as_u64),
        Some(256)
    );

    let i2s = Gguf::open(golden("tiny-i2s.gguf")).unwrap();
    assert!(i2s.bitnet_fork_types);
    let q = i2s.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.ty, q.bytes), (TensorType::I2S, 256 * 256 / 4 + 32));
    // The scale sits in the tail, right after the codes.
    let data = i2s.data(q);
    let scale = f32::from_le_bytes(data[16384..16388].try_into().unwrap());
    assert!(scale > 0.0 && scale.is_finite(), "{scale}");

    let b158 = Gguf::open(golden("tiny-b158.gguf")).unwrap();
    assert_eq!(b158.architecture(), Some("bitnet-b1.58"));
    assert_eq!(
        b158.tensor("blk.0.ffn_down.weight").unwrap().dims,
        vec![640, 256]
    );
}

#[test]
fn shared_tensor_bytes_are_the_map_itself_and_outlive_the_reader() {
    let g = Gguf::open(golden("tiny-tq2.gguf")).unwrap();
    let t = g.tensor("blk.0.attn_q.weight").unwrap().clone();
    let shared = g.shared(&t);
    // In place: the very bytes of the map, not a copy.
    assert_eq!(shared.as_ptr(), g.data(&t).as_ptr());
    assert_eq!(shared.len(), 256 * 66);
    let copy = g.data(&t).to_vec();
    drop(g);
    // The handle keeps the file mapped after the reader is gone.
    assert_eq!(&shared[..], &copy[..]);
}

#[test]
fn writing_a_parsed_file_back_reproduces_it_byte_for_byte() {
    for name in [
        "tiny-tq2.gguf",
        "tiny-f16.gguf",
        "tiny-i2s.gguf",
        "tiny-b158.gguf",
    ] {
        let original = std::fs::read(golden(name)).unwrap();
        let g = Gguf::open(golden(name)).unwrap();
        let tensors: Vec<NewTensor> = g
            .tensors
            .iter()
            .map(|t| NewTensor {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ty: t.ty,
            })
            .collect();
        let mut w = GgufWriter::new(Vec::new(), &g.metadata, &tensors).unwrap();
        for t in &g.tensors {
            // Uneven pieces exercise writes that span tensor boundaries.
            for piece in g.data(t).chunks(1000) {
                w.write_data(piece).unwrap();
            }
        }
        let written = w.finish().unwrap();
        // bitnet.cpp pads I2_S data with uninitialised bytes; compare what carries meaning.
        assert_eq!(written.len(), original.len(), "{name}");
        let reread = Gguf::parse(PathBuf::from(name), Bytes::Owned(written)).unwrap();
        assert_eq!(reread.metadata, g.metadata, "{name}");
        for t in &g.tensors {
            assert_eq!(reread.tensor(&t.name), Some(t), "{name}");
            assert_eq!(reread.data(t), g.data(t), "{name} {}", t.name);
        }
        if name != "tiny-i2s.gguf" {
            assert!(reread_bytes(&reread) == original, "{name}: bytes differ");
        }
    }
}

fn reread_bytes(g: &Gguf) -> Vec<u8> {
    let mut tensors = Vec::new();
    for t in &g.tensors {
        tensors.push(NewTensor {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        });
    }
    let mut w = GgufWriter::new(Vec::new(), &g.metadata, &tensors).unwrap();
    for t in &g.tensors {
        w.write_data(g.data(t)).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn errors_name_the_file_and_the_field() {
    let bytes = std::fs::read(golden("tiny-tq2.gguf")).unwrap();
    let parse = |b: Vec<u8>| {
        Gguf::parse(PathBuf::from("model.gguf"), Bytes::Owned(b))
            .err()
            .unwrap()
    };

    let mut bad = bytes.clone();
    bad[0] = b'X';
    let e = parse(bad);
    assert!(matches!(e.kind, GgufErrorKind::BadMagic(_)));
    assert!(
        e.to_string().starts_with("model.gguf: not a GGUF file"),
        "{e}"
    );

    let mut bad = bytes.clone();
    bad[4] = 1;
    assert!(matches!(parse(bad).kind, GgufErrorKind::Version(1)));

    // Cut inside the tensor data: the last tensors no longer fit.
    let e = parse(bytes[..bytes.len() - 100].to_vec());
    assert!(e.to_string().contains("outside the"), "{e}");

    // Cut inside the header: counts that cannot fit are refused before anything is read.
    let e = parse(bytes[..500].to_vec());
    assert!(
        e.to_string()
            .contains("tensor count at byte 8: count 24 cannot fit"),
        "{e}"
    );
    let e = parse(bytes[..12].to_vec());
    assert!(
        matches!(
            e.kind,
            GgufErrorKind::Truncated {
                offset: 8,
                need: 8,
                left: 4,
                ..
            }
        ),
        "{e}"
    );

    let e = Gguf::open(golden("no-such.gguf")).err().unwrap();
    assert!(e.to_string().contains("no-such.gguf"), "{e}");
}

#[test]
fn the_writer_refuses_mixed_arrays_and_short_data() {
    let mixed = vec![(
        "k".to_string(),
        Value::Array(vec![Value::U32(1), Value::F32(1.0)]),
    )];
    assert!(GgufWriter::new(Vec::new(), &mixed, &[]).is_err());
    let t = NewTensor {
        name: "w".into(),
        dims: vec![256, 2],
        ty: TensorType::Tq2_0,
    };
    let mut w = GgufWriter::new(Vec::new(), &[], std::slice::from_ref(&t)).unwrap();
    w.write_data(&[0; 100]).unwrap();
    assert!(w.finish().is_err());
    let mut w = GgufWriter::new(Vec::new(), &[], &[t]).unwrap();
    assert!(w.write_data(&[0; 133]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Flipped bytes and truncations anywhere in the header never panic or read out of bounds.
    #[test]
    fn mutated_files_give_errors_not_panics(
        flips in prop::collection::vec((0usize..23_000, any::<u8>()), 1..8),
        cut in prop::option::of(0usize..23_000),
    ) {
        let mut bytes = std::fs::read(golden("tiny-tq2.gguf")).unwrap();
        for (at, v) in flips {
            let at = at % bytes.len();
            bytes[at] = v;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut);
        }
        if let Ok(g) = Gguf::parse(PathBuf::from("fuzz.gguf"), Bytes::Owned(bytes)) {
            for t in &g.tensors {
                prop_assert_eq!(g.data(t).len(), t.bytes);
            }
        }
    }
}

#[test]
fn absurd_dimensions_are_errors_not_overflows() {
    // Found by the mutation fuzzer: a huge element count overflowed the byte count.
    for ty in [
        TensorType::Q6K,
        TensorType::Tq2_0,
        TensorType::Tl2,
        TensorType::I2S,
    ] {
        let err = ty.tensor_bytes(&[1 << 40, 1 << 20]).unwrap_err();
        assert!(err.contains("more than any tensor"), "{ty}: {err}");
        let err = ty.tensor_bytes(&[u64::MAX, 3]).unwrap_err();
        assert!(
            err.contains("overflow") || err.contains("too large"),
            "{ty}: {err}"
        );
    }
    assert_eq!(TensorType::Tq2_0.tensor_bytes(&[256, 4]).unwrap(), 4 * 66);
}
