//! Our quantizers on real tensors of the shared tiny `bitnet` model, against the bytes upstream's
//! own quantizers wrote into tiny-tq2.gguf (llama.cpp) and tiny-i2s.gguf (bitnet.cpp).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use datasets::golden::tiny_tensors;
use kernels::find_format;

#[test]
fn upstream_quantizers_agree_on_tiny_model_tensors() {
    let mut checked = Vec::new();
    for t in tiny_tensors().unwrap() {
        for (format, expected) in &t.quantized {
            let f = find_format(format).unwrap();
            let ours = f.pack(&t.weights, t.rows, t.cols).unwrap();
            assert_eq!(ours.len(), expected.len(), "{} as {format}: size", t.name);
            // bitnet.cpp leaves bytes 4..32 of the I2_S tail uninitialised (heap garbage in the
            // file); only the codes and the f32 scale carry meaning, and we write zeros there.
            let meaningful = match format.as_str() {
                "i2_s" => ours.len() - 28,
                _ => ours.len(),
            };
            let (ours, expected) = (&ours[..meaningful], &expected[..meaningful]);
            if let Some(at) = ours.iter().zip(expected).position(|(a, b)| a != b) {
                panic!(
                    "{} as {format}: first differing byte {at}: ours {:02x}, upstream {:02x}",
                    t.name, ours[at], expected[at]
                );
            }
            checked.push(format!("{}:{format}", t.name));
        }
    }
    // Two weight tensors in two formats, and the embedding as Q6_K.
    assert_eq!(checked.len(), 5, "{checked:?}");
}
