//! Tests against the real probes of the machine they run on; off by default (CI is a VM with
//! none). Run on bare metal with `cargo test -p power --features hardware-tests -- --nocapture`
//! (RAPL needs root, `chmod a+r` on `energy_uj`, or `perf_event_paranoid` <= 0).
#![cfg(feature = "hardware-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use power::{Meter, ProbeSpec, Source};

fn busy(d: Duration) -> u64 {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    x
}

/// The local probe `auto` picks measures more energy under load than at idle, at a power a
/// real machine draws.
#[test]
fn auto_probe_sees_load_above_idle() {
    let source = power::open(&ProbeSpec::Auto, Path::new("/"))
        .expect("no usable probe on this machine: see `ternbench power probes`")
        .expect("auto always opens a probe or fails");
    let live = matches!(source, Source::Live(_));
    assert!(live, "auto opens live probes only");
    let meter = Meter::start(source, Duration::from_millis(50)).unwrap();
    println!("probe {} ({})", meter.info().label(), meter.info().source);
    let idle = meter.idle(Duration::from_secs(3)).unwrap();
    let from = meter.mark();
    let threads: Vec<_> = (0..std::thread::available_parallelism().map_or(1, |n| n.get()))
        .map(|_| std::thread::spawn(|| busy(Duration::from_secs(3))))
        .collect();
    for t in threads {
        std::hint::black_box(t.join().unwrap());
    }
    let to = meter.mark();
    let load = meter.energy(from, to).unwrap();
    println!(
        "idle {:.2} W, load {:.2} W over {:.2} s",
        idle.power.0,
        load.avg_power().0,
        load.duration_s.0
    );
    assert!(load.coverage > 0.99, "{load:?}");
    assert!(
        idle.power.0 > 0.05 && idle.power.0 < 2000.0,
        "idle {:?}",
        idle.power
    );
    assert!(
        load.avg_power().0 > idle.power.0,
        "load {:?} not above idle {:?}",
        load.avg_power(),
        idle.power
    );
}
