//! Fixed records shared by the integration tests: model and kernel results for tq2_0, i2_s,
//! f16 and q4_0 from one run, two with energy fields.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use reports::{Record, RecordKind};

/// A fresh, empty directory under cargo's per-target temporary directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn model(format: &str, test: &str, samples: &[f64]) -> Record {
    let med = median(samples);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let bpw = match format {
        "tq2_0" => 2.0625,
        "i2_s" => 2.0,
        "q4_0" => 4.5,
        _ => 16.0,
    };
    let params = 2_410_000_000_u64;
    let size = (params as f64 * bpw / 8.0) as u64;
    // Decode reads every weight once per token.
    let decode = test.starts_with("tg");
    let gbps = size as f64 * med / 1e9;
    let (n_prompt, n_gen) = match test {
        "pp64" => (Some(64), Some(0)),
        _ => (Some(0), Some(32)),
    };
    Record {
        run_id: "20250131-120000-ab12".to_owned(),
        timestamp: "2025-01-31T12:00:00Z".to_owned(),
        suite: "datasets/suites/smoke.toml".to_owned(),
        model: Some(format!("bitnet-b1.58-2b4t-{format}.gguf")),
        size: Some(size),
        params: Some(params),
        bits_per_weight: Some(bpw),
        resident: Some("dram".to_owned()),
        gbps: decode.then_some(gbps),
        bandwidth_gbps: decode.then_some(40.0),
        bandwidth_fraction: decode.then_some(gbps / 40.0),
        device: Some("AMD EPYC 7B13".to_owned()),
        threads: 2,
        kernel: Some(format!("{format}/avx2")),
        n_prompt,
        n_gen,
        samples: samples.to_vec(),
        median: med,
        mean,
        stddev: 0.5,
        ci95_lo: Some(med * 0.98),
        ci95_hi: Some(med * 1.02),
        tps: Some(mean),
        git_commit: Some("df8a816".to_owned()),
        ..Record::new(RecordKind::Model, test, format)
    }
}

fn kernel(format: &str, resident: &str, m: u64, k: u64, fraction: f64, bpw: f64) -> Record {
    let ops = 2.0 * m as f64 * k as f64;
    let bytes = m as f64 * k as f64 * bpw / 8.0;
    let bandwidth = if resident == "dram" { 40.0 } else { 150.0 };
    let gbps = bandwidth * fraction;
    let median_ns = bytes / gbps;
    Record {
        run_id: "20250131-120000-ab12".to_owned(),
        timestamp: "2025-01-31T12:01:00Z".to_owned(),
        suite: "kernels".to_owned(),
        threads: 2,
        kernel: Some(format!("{format}/avx2")),
        bits_per_weight: Some(bpw),
        m: Some(m),
        k: Some(k),
        tokens: Some(1),
        resident: Some(resident.to_owned()),
        samples: vec![median_ns * 0.99, median_ns, median_ns * 1.03],
        median: median_ns,
        mean: median_ns * 1.007,
        stddev: median_ns * 0.02,
        ci95_lo: Some(median_ns * 0.99),
        ci95_hi: Some(median_ns * 1.03),
        gops: Some(ops / median_ns),
        gbps: Some(gbps),
        bandwidth_gbps: Some(bandwidth),
        bandwidth_fraction: Some(gbps / bandwidth),
        check: Some("scalar reference max rel err 3e-7".to_owned()),
        ..Record::new(RecordKind::Kernel, "gemv", format)
    }
}

pub fn fixture() -> Vec<Record> {
    let mut out = vec![
        model("tq2_0", "tg32", &[55.0, 54.0, 56.0, 55.5, 54.5]),
        model("i2_s", "tg32", &[60.0, 59.0, 61.5, 60.5, 59.5]),
        model("f16", "tg32", &[7.5, 7.4, 7.6, 7.55, 7.45]),
        model("q4_0", "tg32", &[24.0, 23.5, 24.5, 23.8, 24.2]),
        model("tq2_0", "pp64", &[410.0, 400.0, 420.0, 405.0, 415.0]),
        model("i2_s", "pp64", &[380.0, 370.0, 390.0, 375.0, 385.0]),
        model("f16", "pp64", &[150.0, 148.0, 152.0, 149.0, 151.0]),
        model("q4_0", "pp64", &[260.0, 255.0, 265.0, 258.0, 262.0]),
    ];
    // Energy on two decode records: one measured by RAPL, one estimated.
    out[0].energy_j_per_token = Some(0.41);
    out[0].avg_power_w = Some(22.6);
    out[0].energy_probe = Some("rapl:package-0".to_owned());
    out[0].energy_measured = Some(true);
    out[0].idle_subtracted = Some(true);
    out[2].energy_j_per_token = Some(1.52);
    out[2].avg_power_w = Some(24.3);
    out[2].energy_probe = Some("estimate:utilisation x TDP".to_owned());
    out[2].energy_measured = Some(false);
    out[2].idle_subtracted = Some(false);
    out[3].warnings = vec![
        "only 5 repetitions".to_owned(),
        "cpu frequency changed during the run".to_owned(),
    ];
    for (m, k) in [(2560, 2560), (6912, 2560), (2560, 6912)] {
        for resident in ["dram", "cache"] {
            let cache = if resident == "cache" { 0.5 } else { 1.0 };
            out.push(kernel("tq2_0", resident, m, k, 0.78 * cache, 2.0625));
            out.push(kernel("i2_s", resident, m, k, 0.81 * cache, 2.0));
            out.push(kernel("f16", resident, m, k, 0.92 * cache, 16.0));
            out.push(kernel("q4_0", resident, m, k, 0.85 * cache, 4.5));
        }
    }
    out
}
