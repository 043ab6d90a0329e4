//! The PTDaemon client against a scripted loopback daemon: a normal session, error replies,
//! a meter that vanishes mid-run, one that never answers, and one that is not there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use power::ptd;
use power::{AnomalyKind, DomainKind, Meter, ProbeError, Scope, Seconds, Source, Trace};

const HELLO: &str = "Hello, PTDaemon here!";
const IDENTIFY: &str = "YokogawaWT330E,1000,1,1,1,1,0,0,1,version=1.9.2,mode=power";

/// What the scripted daemon does with one command.
enum Act {
    Reply(String),
    /// Drop the connection without replying.
    Close,
    /// Read the command and say nothing.
    Ignore,
}

/// A loopback daemon serving `connections` connections in turn, then refusing more. The
/// handler gets the connection number and the command; every command received is logged, with
/// `!CRLF` appended when it did not end in CR LF.
fn daemon<F>(connections: usize, mut handler: F) -> (u16, Arc<Mutex<Vec<String>>>)
where
    F: FnMut(usize, &str) -> Act + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    std::thread::spawn(move || {
        for conn in 0..connections {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let cmd = line.trim_end_matches(['\r', '\n']).to_owned();
                let crlf = if line.ends_with("\r\n") { "" } else { "!CRLF" };
                seen.lock().unwrap().push(format!("{cmd}{crlf}"));
                match handler(conn, &cmd) {
                    Act::Reply(reply) => {
                        if writer.write_all(reply.as_bytes()).is_err() {
                            break;
                        }
                    }
                    Act::Close => break,
                    Act::Ignore => {}
                }
            }
        }
    });
    (port, log)
}

/// Answers the opening commands; `watts` answers everything else.
fn session(
    mut watts: impl FnMut(usize, &str) -> Act + Send + 'static,
) -> impl FnMut(usize, &str) -> Act + Send + 'static {
    move |conn, cmd| match cmd {
        "Hello" => Act::Reply(format!("{HELLO}\r\n")),
        "Identify" => Act::Reply(format!("{IDENTIFY}\n")),
        "RR" => Act::Reply("Ranges,1,-1,1,-1\n".into()),
        _ => watts(conn, cmd),
    }
}

fn address_in(err: &ProbeError, port: u16) {
    let text = err.to_string();
    assert!(text.contains(&format!("ptd://127.0.0.1:{port}")), "{text}");
}

#[test]
fn normal_session_integrates_the_served_watts() {
    // The open probes Watts once (100 W); reads then get 100, 110, 120, 130, 140 W.
    let served = [100.0, 100.0, 110.0, 120.0, 130.0, 140.0];
    let mut next = 0;
    let (port, log) = daemon(
        1,
        session(move |_, cmd| match cmd {
            "Watts" => {
                let w = served[next.min(served.len() - 1)];
                next += 1;
                // Both reply forms seen in the wild.
                Act::Reply(if next % 2 == 0 {
                    format!("Watts,{w}\r\n")
                } else {
                    format!("{w}\n")
                })
            }
            _ => Act::Reply("Error: unknown command\n".into()),
        }),
    );
    let mut probe = ptd::open("127.0.0.1", port).unwrap();
    let info = probe.info().clone();
    assert_eq!(info.name, format!("ptd://127.0.0.1:{port}"));
    assert!(info.source.contains("YokogawaWT330E"), "{}", info.source);
    assert!(
        info.notes.iter().any(|n| n.contains(IDENTIFY)),
        "{:?}",
        info.notes
    );
    assert!(info.notes.iter().any(|n| n.contains("Ranges,1,-1,1,-1")));
    assert_eq!(info.domains.len(), 1);
    assert_eq!(info.domains[0].name, "wall");
    assert_eq!(info.domains[0].scope, Scope::Wall);
    assert_eq!(info.domains[0].kind, DomainKind::Power);
    assert!(info.domains[0].in_total && info.measured);

    let mut trace = Trace::new(info.domains.clone());
    for i in 0..5 {
        trace.push(Seconds(f64::from(i)), &probe.read().unwrap());
    }
    // Trapezoids: 105 + 115 + 125 + 135.
    let w = trace.energy(Seconds(0.0), Seconds(4.0));
    assert!((w.energy_j.0 - 480.0).abs() < 1e-9, "{w:?}");
    assert_eq!(w.coverage, 1.0);
    drop(probe);
    assert_eq!(
        *log.lock().unwrap(),
        ["Hello", "Identify", "RR", "Watts", "Watts", "Watts", "Watts", "Watts", "Watts"]
    );
}

#[test]
fn live_meter_over_a_constant_meter_reads_its_power() {
    let (port, _) = daemon(1, session(|_, _| Act::Reply("Watts,200.0\n".into())));
    let probe = ptd::open("127.0.0.1", port).unwrap();
    let meter = Meter::start(Source::Live(probe), Duration::from_millis(5)).unwrap();
    let from = meter.mark();
    std::thread::sleep(Duration::from_millis(100));
    let to = meter.mark();
    let w = meter.energy(from, to).unwrap();
    // The mark's own reading lands just before the mark's time, so coverage is just under 1.
    assert!(w.coverage > 0.9, "{w:?}");
    let expected = 200.0 * w.coverage * (to.t.0 - from.t.0);
    assert!((w.energy_j.0 - expected).abs() < 1e-9 * expected, "{w:?}");
    assert!(w.samples >= 2);
    assert!(meter.anomalies().is_empty());
}

#[test]
fn go_is_sent_when_watts_needs_a_measurement_and_stop_on_drop() {
    let mut running = false;
    let (port, log) = daemon(
        1,
        session(move |_, cmd| match cmd {
            "Watts" if !running => Act::Reply("Error: no measurement running\n".into()),
            "Watts" => Act::Reply("55.5\n".into()),
            c if c.starts_with("Go,") => {
                running = true;
                Act::Reply("Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples\n".into())
            }
            "Stop" => Act::Reply("Stopping untimed measurement\n".into()),
            _ => Act::Reply("Error: unknown command\n".into()),
        }),
    );
    let mut probe = ptd::open("127.0.0.1", port).unwrap();
    assert_eq!(probe.read().unwrap(), [55.5]);
    drop(probe);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "Hello",
            "Identify",
            "RR",
            "Watts",
            "Go,1000,0,ternbench",
            "Watts",
            "Stop"
        ]
    );
}

#[test]
fn error_and_bad_replies_are_protocol_errors() {
    let mut n = 0;
    let (port, _) = daemon(
        1,
        session(move |_, _| {
            n += 1;
            Act::Reply(
                match n {
                    1 => "12.5\n",
                    2 => "Error: analyzer not responding\n",
                    3 => "-3.0\n",
                    4 => "NaN\n",
                    5 => "Volts,230\n",
                    _ => "7\n",
                }
                .into(),
            )
        }),
    );
    let mut probe = ptd::open("127.0.0.1", port).unwrap();
    for expected in ["Error: analyzer not responding", "-3.0", "NaN", "Volts,230"] {
        match probe.read() {
            Err(e @ ProbeError::Protocol { .. }) => {
                assert!(e.to_string().contains(expected), "{e}");
                address_in(&e, port);
            }
            other => panic!("expected a protocol error for {expected:?}, got {other:?}"),
        }
    }
    // Reply errors keep the connection: the next reading is fine.
    assert_eq!(probe.read().unwrap(), [7.0]);
}

#[test]
fn a_daemon_that_is_not_ptdaemon_is_refused() {
    let (port, _) = daemon(1, |_, _| Act::Reply("SSH-2.0-OpenSSH_9.6\n".into()));
    match ptd::open("127.0.0.1", port) {
        Err(e @ ProbeError::Protocol { .. }) => {
            assert!(e.to_string().contains("SSH-2.0"), "{e}");
        }
        Err(other) => panic!("expected a protocol error, got {other}"),
        Ok(_) => panic!("opened a non-PTDaemon"),
    }
}

#[test]
fn disconnect_mid_run_is_reported_then_reconnect_resumes() {
    // First connection: two good readings after the open, then the daemon hangs up.
    let mut watts = 0;
    let (port, log) = daemon(
        2,
        session(move |conn, _| {
            watts += 1;
            match (conn, watts) {
                (0, 1..=3) => Act::Reply("50\n".into()),
                (0, _) => Act::Close,
                _ => Act::Reply("60\n".into()),
            }
        }),
    );
    let mut probe = ptd::open("127.0.0.1", port).unwrap();
    assert_eq!(probe.read().unwrap(), [50.0]);
    assert_eq!(probe.read().unwrap(), [50.0]);
    match probe.read() {
        Err(e @ ProbeError::Disconnected { .. }) => address_in(&e, port),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // The daemon accepts a second connection: the next read reconnects and greets again.
    assert_eq!(probe.read().unwrap(), [60.0]);
    let log = log.lock().unwrap();
    assert_eq!(log[log.len() - 2..], ["Hello", "Watts"]);
}

#[test]
fn meter_spanning_a_disconnect_keeps_earlier_energy_and_logs_one_outage() {
    // A constant 100 W for the open and 20 polls, then the daemon hangs up and refuses more.
    let mut watts = 0;
    let (port, _) = daemon(
        1,
        session(move |_, _| {
            watts += 1;
            if watts <= 21 {
                Act::Reply("100\n".into())
            } else {
                Act::Close
            }
        }),
    );
    let probe = ptd::open("127.0.0.1", port).unwrap();
    let meter = Meter::start(Source::Live(probe), Duration::from_millis(5)).unwrap();
    let from = meter.mark();
    // Wait (generously) for the outage, then let a few failed polls pass.
    for _ in 0..2000 {
        if !meter.anomalies().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    let to = meter.mark();
    let w = meter.energy(from, to).unwrap();
    let errors: Vec<_> = w
        .anomalies
        .iter()
        .filter(|a| matches!(a.kind, AnomalyKind::ReadError { .. }))
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", w.anomalies);
    if let AnomalyKind::ReadError { message } = &errors[0].kind {
        assert!(
            message.contains(&format!("ptd://127.0.0.1:{port}")),
            "{message}"
        );
    }
    assert!(w.coverage > 0.0 && w.coverage < 1.0, "{w:?}");
    // Everything before the disconnect counts: 100 W over the covered part of the window.
    let covered = w.coverage * w.duration_s.0;
    assert!(
        (w.energy_j.0 - 100.0 * covered).abs() < 1e-9 * 100.0 * covered,
        "{w:?}"
    );
}

#[test]
fn a_daemon_that_never_answers_times_out() {
    let (port, _) = daemon(1, |_, _| Act::Ignore);
    match ptd::open_with_timeout("127.0.0.1", port, Duration::from_millis(200)) {
        Err(e @ ProbeError::Disconnected { .. }) => {
            assert!(e.to_string().contains("no reply to \"Hello\""), "{e}");
            address_in(&e, port);
        }
        Err(other) => panic!("expected Disconnected, got {other}"),
        Ok(_) => panic!("opened a silent daemon"),
    }
}

#[test]
fn connection_refused_names_the_address() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    match ptd::open("127.0.0.1", port) {
        Err(e @ (ProbeError::Unavailable { .. } | ProbeError::Disconnected { .. })) => {
            address_in(&e, port);
            assert!(e.to_string().contains("cannot connect"), "{e}");
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}
