//! A client for the SPEC PTDaemon TCP protocol: ASCII commands sent with CRLF, one reply line
//! per command ending in LF. The probe polls `Watts` on every read, so it needs no measurement
//! state on the daemon; only if the daemon refuses `Watts` before a measurement does it send
//! `Go,1000,0,ternbench` (and `Stop` when dropped).
//!
//! Reconnect policy: after the connection is lost, each later `read()` tries one reconnect
//! (with the connect timeout) and, while that fails, repeats the error that began the outage,
//! so the meter records one anomaly per outage and the gap shows in coverage.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::probe::{Domain, DomainKind, Probe, ProbeError, ProbeInfo, Reading, Scope};

/// How long connecting, and waiting for any one reply, may take before the meter counts as dead.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The command that starts an untimed measurement: 1000 ms samples, no ramp-up, our mark.
const GO: &str = "Go,1000,0,ternbench";

/// Opens a PTDaemon at `host:port` with the default 3 s timeouts.
pub fn open(host: &str, port: u16) -> Result<Box<dyn Probe>, ProbeError> {
    open_with_timeout(host, port, DEFAULT_TIMEOUT)
}

/// Opens a PTDaemon with `timeout` on connecting and on each reply.
pub fn open_with_timeout(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Box<dyn Probe>, ProbeError> {
    Ok(Box::new(Ptd::open(host, port, timeout)?))
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// Why a command failed: the link (reconnect may help) or the daemon's answer (it won't).
enum Failure {
    Link(String),
    Reply(String),
}

struct Ptd {
    info: ProbeInfo,
    host: String,
    port: u16,
    timeout: Duration,
    conn: Option<Conn>,
    /// Whether we sent `Go`, so drop must send `Stop` and a reconnect must send `Go` again.
    started: bool,
    /// The reason of the outage in progress, repeated while reconnects fail.
    outage: Option<String>,
}

impl Ptd {
    fn open(host: &str, port: u16, timeout: Duration) -> Result<Ptd, ProbeError> {
        let name = format!("ptd://{host}:{port}");
        let mut ptd = Ptd {
            info: ProbeInfo {
                name: name.clone(),
                source: name.clone(),
                domains: vec![Domain {
                    name: "wall".into(),
                    scope: Scope::Wall,
                    kind: DomainKind::Power,
                    in_total: true,
                }],
                measured: true,
                resolution: None,
                power_resolution: None,
                update_period: None,
                notes: Vec::new(),
            },
            host: host.to_owned(),
            port,
            timeout,
            conn: None,
            started: false,
            outage: None,
        };
        let conn = ptd.connect().map_err(|reason| ProbeError::Unavailable {
            probe: name.clone(),
            reason,
        })?;
        ptd.conn = Some(conn);
        ptd.hello()?;
        let identify = ptd.command("Identify")?;
        ptd.info.source = format!("{name} ({identify})");
        ptd.info.notes.push(format!("Identify: {identify}"));
        // Ranges are informative only; a daemon that refuses RR still measures.
        match ptd.exchange("RR") {
            Ok(ranges) => ptd.info.notes.push(format!("RR: {ranges}")),
            Err(Failure::Reply(reply)) => ptd.info.notes.push(format!("RR refused: {reply}")),
            Err(Failure::Link(reason)) => return Err(ptd.disconnected(reason)),
        }
        // Some daemons answer Watts only during a measurement: start one then.
        match ptd.exchange("Watts") {
            Ok(_) => {}
            Err(Failure::Reply(reply)) => {
                ptd.command(GO)?;
                ptd.started = true;
                ptd.info.notes.push(format!(
                    "Watts before Go answered {reply:?}; sent {GO} and will send Stop at the end"
                ));
            }
            Err(Failure::Link(reason)) => return Err(ptd.disconnected(reason)),
        }
        ptd.info.notes.push(
            "polls Watts on each read; analyzers typically update once a second, so faster polls \
             repeat the last value"
                .into(),
        );
        Ok(ptd)
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn connect(&self) -> Result<Conn, String> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (host, self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.addr()))?
            .collect();
        let mut last = format!("{} resolves to no address", self.addr());
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    let setup = stream
                        .set_read_timeout(Some(self.timeout))
                        .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
                        .and_then(|()| stream.set_nodelay(true))
                        .and_then(|()| stream.try_clone());
                    return match setup {
                        Ok(writer) => Ok(Conn {
                            reader: BufReader::new(stream),
                            writer,
                        }),
                        Err(e) => Err(format!("cannot set up the socket to {addr}: {e}")),
                    };
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        Err(last)
    }

    /// Sends one command and returns its reply line without the line ending.
    fn exchange(&mut self, cmd: &str) -> Result<String, Failure> {
        let timeout = self.timeout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Link("not connected".into()));
        };
        let outcome = (|| {
            conn.writer
                .write_all(format!("{cmd}\r\n").as_bytes())
                .and_then(|()| conn.writer.flush())
                .map_err(|e| format!("sending {cmd:?}: {e}"))?;
            let mut line = String::new();
            match conn.reader.read_line(&mut line) {
                Ok(0) => Err(format!("connection closed by the meter after {cmd:?}")),
                Ok(_) if !line.ends_with('\n') => Err(format!(
                    "connection closed mid-reply to {cmd:?} (got {line:?})"
                )),
                Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(
                    format!("no reply to {cmd:?} within {:.1} s", timeout.as_secs_f64()),
                ),
                Err(e) => Err(format!("reading the reply to {cmd:?}: {e}")),
            }
        })();
        match outcome {
            Ok(reply) if reply.trim_start().starts_with("Error") => {
                Err(Failure::Reply(reply.trim().to_owned()))
            }
            Ok(reply) => Ok(reply.trim().to_owned()),
            Err(reason) => {
                // A half-read reply would desynchronise every later exchange: drop the link.
                self.conn = None;
                Err(Failure::Link(reason))
            }
        }
    }

    /// `exchange` with failures turned into probe errors.
    fn command(&mut self, cmd: &str) -> Result<String, ProbeError> {
        self.exchange(cmd).map_err(|f| match f {
            Failure::Link(reason) => self.disconnected(reason),
            Failure::Reply(reply) => self.protocol(format!("{cmd:?} answered {reply:?}")),
        })
    }

    fn hello(&mut self) -> Result<(), ProbeError> {
        let reply = self.command("Hello")?;
        if !reply.starts_with("Hello, PTDaemon here") {
            return Err(self.protocol(format!(
                "\"Hello\" answered {reply:?}, not \"Hello, PTDaemon here!\": is this a PTDaemon?"
            )));
        }
        Ok(())
    }

    fn disconnected(&self, reason: String) -> ProbeError {
        ProbeError::Disconnected {
            probe: self.info.name.clone(),
            reason,
        }
    }

    fn protocol(&self, reason: String) -> ProbeError {
        ProbeError::Protocol {
            probe: self.info.name.clone(),
            reason,
        }
    }

    /// One reconnect attempt: connect, greet, and restart the measurement if we had one.
    fn reconnect(&mut self) -> Result<(), ProbeError> {
        let conn = self.connect().map_err(|r| self.disconnected(r))?;
        self.conn = Some(conn);
        self.hello()?;
        if self.started {
            self.command(GO)?;
        }
        Ok(())
    }

    fn watts(&mut self) -> Result<f64, ProbeError> {
        let reply = self.command("Watts")?;
        parse_watts(&reply).ok_or_else(|| {
            self.protocol(format!(
                "\"Watts\" answered {reply:?}, not a finite non-negative number of watts"
            ))
        })
    }
}

/// `123.4` or `Watts,123.4` (both are seen in the wild).
fn parse_watts(reply: &str) -> Option<f64> {
    let value = match reply.split_once(',') {
        Some((key, value)) if key.trim().eq_ignore_ascii_case("watts") => value,
        Some(_) => return None,
        None => reply,
    };
    let watts: f64 = value.trim().parse().ok()?;
    (watts.is_finite() && watts >= 0.0).then_some(watts)
}

impl Probe for Ptd {
    fn info(&self) -> &ProbeInfo {
        &self.info
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        if self.conn.is_none() {
            if let Err(e) = self.reconnect() {
                self.conn = None;
                // Repeat the outage's first error so the meter logs the outage once.
                return Err(match &self.outage {
                    Some(reason) => self.disconnected(reason.clone()),
                    None => e,
                });
            }
            self.outage = None;
        }
        match self.watts() {
            Ok(w) => Ok(vec![w]),
            Err(e) => {
                if self.conn.is_none() {
                    let reason = match &e {
                        ProbeError::Disconnected { reason, .. } => reason.clone(),
                        other => other.to_string(),
                    };
                    let reason = format!("{reason}; will try to reconnect on each later read");
                    self.outage = Some(reason.clone());
                    return Err(self.disconnected(reason));
                }
                Err(e)
            }
        }
    }
}

impl Drop for Ptd {
    fn drop(&mut self) {
        if self.started && self.conn.is_some() {
            // Best effort: the daemon ends an orphaned measurement by itself eventually.
            let _ = self.exchange("Stop");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_watts;

    #[test]
    fn watts_reply_forms() {
        assert_eq!(parse_watts("123.5"), Some(123.5));
        assert_eq!(parse_watts("Watts,42"), Some(42.0));
        assert_eq!(parse_watts("watts, 0.25 "), Some(0.25));
        assert_eq!(parse_watts("-1"), None);
        assert_eq!(parse_watts("NaN"), None);
        assert_eq!(parse_watts("Volts,230"), None);
        assert_eq!(parse_watts(""), None);
    }
}
