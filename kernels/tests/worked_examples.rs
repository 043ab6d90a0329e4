//! The worked examples of research/formats.md, byte for byte: the row t_i = (i mod 3) − 1, s = 0.5.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernels::find_format;

fn example_row(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i % 3) as f32 - 1.0) * 0.5).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn i2_s_worked_example() {
    let packed = find_format("i2_s")
        .unwrap()
        .pack(&example_row(128), 1, 128)
        .unwrap();
    assert_eq!(packed.len(), 32 + 32);
    assert_eq!(hex(&packed[..8]), "2449922449922449");
    assert_eq!(hex(&packed[32..36]), "0000003f");
    assert!(packed[36..].iter().all(|&b| b == 0));
}

#[test]
fn tq2_0_worked_example() {
    let packed = find_format("tq2_0")
        .unwrap()
        .pack(&example_row(256), 1, 256)
        .unwrap();
    assert_eq!(hex(&packed[..8]), "1861861861861861");
    assert_eq!(hex(&packed[32..36]), "86186186");
    assert_eq!(hex(&packed[64..66]), "0038");
}

#[test]
fn tq1_0_worked_example() {
    let packed = find_format("tq1_0")
        .unwrap()
        .pack(&example_row(256), 1, 256)
        .unwrap();
    assert_eq!(hex(&packed[..8]), "456ccf456ccf456c");
    assert_eq!(hex(&packed[32..36]), "94bb3194");
    assert_eq!(hex(&packed[48..52]), "3092bb30");
    assert_eq!(hex(&packed[52..54]), "0038");
}

#[test]
fn tq1_0_trit_decode_is_exact_for_every_packed_value() {
    // Every v in 0..243 packs to one byte whose five digits decode back exactly.
    for v in 0u16..243 {
        let byte = (v * 256).div_ceil(243) as u8;
        let digits: Vec<u16> = (0..5).map(|n| (v / 3u16.pow(4 - n)) % 3).collect();
        let decoded: Vec<u16> = (0..5)
            .map(|n| u16::from(kernels::formats::tq1_0::trit(byte, n as usize)))
            .collect();
        assert_eq!(decoded, digits, "v = {v}, byte = {byte:#04x}");
    }
}
