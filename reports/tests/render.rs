//! render(): the report files exist and carry the numbers computed from the inputs.
// Tests unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reports::{render, Record};

fn find<'a>(records: &'a [Record], format: &str, test: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.format == format && r.test == test)
        .unwrap()
}

#[test]
fn render_writes_markdown_html_and_charts() {
    let dir = common::fresh_dir("render");
    let records = common::fixture();
    let system = serde_json::json!({
        "cpu": {"model": "AMD EPYC 7B13", "logical_cores": 2, "flags": ["avx2", "fma"]},
        "governor": "performance",
        "rustc": "1.89.0",
    });
    let files = render(&records, Some(&system), &dir).unwrap();

    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();

    // Speedups are ratios of the medians measured in the same run.
    for test in ["tg32", "pp64"] {
        for ternary in ["tq2_0", "i2_s"] {
            let t = find(&records, ternary, test).median;
            for base in ["f16", "q4_0"] {
                let expected = format!("{:.2}×", t / find(&records, base, test).median);
                assert!(
                    md.contains(&expected),
                    "{ternary} {test} vs {base}: {expected}"
                );
                assert!(
                    html.contains(&expected),
                    "{ternary} {test} vs {base}: {expected}"
                );
            }
        }
    }
    // q4_0 against f16 as well.
    let q = find(&records, "q4_0", "tg32").median / find(&records, "f16", "tg32").median;
    assert!(md.contains(&format!("{q:.2}×")));

    // Energy: probe and measured/estimated flag travel with the number.
    assert!(md.contains("rapl:package-0"));
    assert!(md.contains("measured") && md.contains("estimated"));
    assert!(!md.contains("No energy measured"));
    // System section and warnings.
    assert!(md.contains("| cpu.model | AMD EPYC 7B13 |"), "{md}");
    assert!(md.contains("| cpu.flags | avx2, fma |"));
    assert!(md.contains("only 5 repetitions"));

    // Every chart exists as SVG and PNG, carries its title, and is inlined in the HTML.
    let stems: Vec<String> = files
        .charts
        .iter()
        .map(|c| c.svg.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "decode_tps",
        "prefill_tps",
        "speedup",
        "bandwidth_dram",
        "bandwidth_cache",
        "energy",
        "kernel_gops_dram",
        "kernel_gops_cache",
    ] {
        assert!(
            stems.iter().any(|s| s == expected),
            "{expected} in {stems:?}"
        );
    }
    for chart in &files.charts {
        let svg = std::fs::read_to_string(&chart.svg).unwrap();
        assert!(
            svg.contains(&chart.title),
            "{} lacks its title",
            chart.svg.display()
        );
        let png = std::fs::read(&chart.png).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{}", chart.png.display());
        let name = chart.png.file_name().unwrap().to_string_lossy();
        assert!(md.contains(&format!("]({name})")), "report.md links {name}");
        assert!(html.contains(&chart.title));
    }
    assert_eq!(html.matches("<svg").count(), files.charts.len());
    assert!(!html.contains("<img"), "the HTML is self-contained");
}

#[test]
fn without_energy_the_report_says_so() {
    let dir = common::fresh_dir("render_no_energy");
    let mut records = common::fixture();
    for r in &mut records {
        r.energy_j_per_token = None;
        r.avg_power_w = None;
        r.energy_probe = None;
        r.energy_measured = None;
        r.idle_subtracted = None;
    }
    let files = render(&records, None, &dir).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("No energy measured"));
    assert!(!md.contains("J/token"));
    assert!(files.charts.iter().all(|c| !c.title.contains("Energy")));
}

#[test]
fn render_of_nothing_still_writes_a_report() {
    let dir = common::fresh_dir("render_empty");
    let files = render(&[], None, &dir).unwrap();
    assert!(files.charts.is_empty());
    assert!(std::fs::read_to_string(&files.markdown)
        .unwrap()
        .contains("No model tests"));
}

#[test]
fn crowded_categories_turn_their_labels_upright() {
    let dir = common::fresh_dir("render_crowded");
    let mut records = Vec::new();
    for r in common::fixture()
        .into_iter()
        .filter(|r| r.resident.as_deref() == Some("dram"))
    {
        if r.m.is_none() {
            continue;
        }
        for (test, tokens) in [("gemv", 1), ("gemm64", 64), ("gemm128", 128)] {
            for isa in ["avx2", "avx512vnni"] {
                let mut k = r.clone();
                k.test = test.to_owned();
                k.tokens = Some(tokens);
                k.kernel = Some(format!("{}/{isa}", r.format));
                records.push(k);
            }
        }
    }
    let files = render(&records, None, &dir).unwrap();
    let gops = files
        .charts
        .iter()
        .find(|c| c.svg.ends_with("kernel_gops_dram.svg"))
        .unwrap();
    let svg = std::fs::read_to_string(&gops.svg).unwrap();
    assert!(
        svg.contains("rotate(270"),
        "nine long labels cannot sit side by side"
    );
    // Two kernels per format: the legend names the kernels.
    assert!(svg.contains("tq2_0/avx512vnni"));
}
