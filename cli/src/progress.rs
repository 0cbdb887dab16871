//! Progress display on stderr, in one of four modes (`--progress`):
//! - `bar`: an `indicatif` bar per phase with counts, bytes, rate and ETA (the default on
//!   a terminal);
//! - `plain`: a log line every 10 s while a phase runs, and one when it ends
//!   (the default when stderr is not a terminal, e.g. in CI logs);
//! - `json`: the same events as JSON lines (`{"event":"start"|"progress"|"finish", ...}`),
//!   at most one `progress` line per second per phase, for CI to parse; log lines are
//!   wrapped as `{"event":"log","message":...}`;
//! - `none`.
//!
//! Log lines go through [`LogWriter`], which suspends the bar so they do not tear it.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arbor_repo::progress::Progress;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `bar` on a terminal, `plain` otherwise.
    Auto,
    /// Bars with counts, bytes, rate and ETA.
    Bar,
    /// A log line per phase, and every 10 s in long ones.
    Plain,
    /// JSON lines: start/progress/finish events per phase, step events, log messages.
    Json,
    /// Nothing.
    None,
}

static MODE: AtomicU8 = AtomicU8::new(0);
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);
/// The phase being reported in plain/json mode.
static PHASE: Mutex<Option<Phase>> = Mutex::new(None);
static DONE: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

struct Phase {
    name: String,
    total: Option<u64>,
    started: Instant,
    last_report: Instant,
}

/// Choose the mode for the whole process (`Auto` resolves against stderr).
pub fn set_mode(mode: Mode) {
    let mode = match mode {
        Mode::Auto if io::stderr().is_terminal() => Mode::Bar,
        Mode::Auto => Mode::Plain,
        m => m,
    };
    MODE.store(mode as u8, Ordering::Relaxed);
}

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Bar,
        2 => Mode::Plain,
        3 => Mode::Json,
        4 => Mode::None,
        _ => Mode::Plain,
    }
}

/// Emit a JSON event line on stderr (json mode only), outside any phase: e.g. the
/// start and end of a release step.
pub fn event(v: serde_json::Value) {
    if mode() == Mode::Json {
        eprintln!("{v}");
    }
}

/// Say something on stderr: a plain line, or `{"event":"log"}` in json mode.
pub fn say(msg: &str) {
    match mode() {
        Mode::Json => eprintln!("{}", json!({"event": "log", "message": msg})),
        Mode::None => {}
        _ => {
            let print = || eprintln!("{msg}");
            match ACTIVE.lock().ok().and_then(|g| g.clone()) {
                Some(bar) => bar.suspend(print),
                None => print(),
            }
        }
    }
}

/// The progress sink commands hand to the libraries.
pub struct Bar;

impl Bar {
    pub fn new() -> Bar {
        Bar
    }
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

fn report(p: &Phase, event: &str) {
    let done = DONE.load(Ordering::Relaxed);
    let bytes = BYTES.load(Ordering::Relaxed);
    let secs = p.started.elapsed().as_secs_f64();
    match mode() {
        Mode::Json => {
            let mut v = json!({
                "event": event,
                "phase": p.name,
                "done": done,
                "total": p.total,
                "seconds": (secs * 1000.0).round() / 1000.0,
            });
            if bytes > 0 {
                v["bytes"] = json!(bytes);
            }
            eprintln!("{v}");
        }
        Mode::Plain => {
            let count = match p.total {
                Some(t) => format!("{done}/{t}"),
                None => format!("{done}"),
            };
            let bytes = if bytes > 0 {
                format!(", {}", human_bytes(bytes))
            } else {
                String::new()
            };
            let what = match event {
                // Plain logs stay short: a line when a phase ends, and every 10 s
                // while a long one runs.
                "start" => return,
                "finish" => format!("done: {count}{bytes} in {secs:.1}s"),
                "fail" => format!("failed at {count}{bytes} after {secs:.1}s"),
                _ => {
                    let eta = match p.total {
                        Some(t) if done > 0 && t > done => {
                            format!(", eta {:.0}s", secs * (t - done) as f64 / done as f64)
                        }
                        _ => String::new(),
                    };
                    format!("{count}{bytes} after {secs:.0}s{eta}")
                }
            };
            eprintln!("{}: {what}", p.name);
        }
        _ => {}
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        match mode() {
            Mode::Bar => {
                let bar = match total {
                    Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                        .with_style(
                            ProgressStyle::with_template(
                                "{prefix:>8} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}",
                            )
                            .expect("static template")
                            .progress_chars("=> "),
                        ),
                    None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                        .with_style(
                            ProgressStyle::with_template(
                                "{prefix:>8} {spinner} {pos} {msg} {per_sec} {elapsed}",
                            )
                            .expect("static template"),
                        ),
                };
                bar.set_prefix(phase.to_string());
                *ACTIVE.lock().expect("progress lock") = Some(bar);
            }
            Mode::Plain | Mode::Json => {
                DONE.store(0, Ordering::Relaxed);
                BYTES.store(0, Ordering::Relaxed);
                let now = Instant::now();
                let p = Phase {
                    name: phase.to_string(),
                    total,
                    started: now,
                    last_report: now,
                };
                report(&p, "start");
                *PHASE.lock().expect("progress lock") = Some(p);
            }
            _ => {}
        }
    }

    fn inc(&self, n: u64) {
        match mode() {
            Mode::Bar => {
                if let Some(b) = ACTIVE.lock().expect("progress lock").as_ref() {
                    b.inc(n);
                }
            }
            Mode::Plain | Mode::Json => {
                DONE.fetch_add(n, Ordering::Relaxed);
                self.maybe_report();
            }
            _ => {}
        }
    }

    fn bytes(&self, n: u64) {
        match mode() {
            Mode::Bar => {
                let total = BYTES.fetch_add(n, Ordering::Relaxed) + n;
                if let Some(b) = ACTIVE.lock().expect("progress lock").as_ref() {
                    b.set_message(human_bytes(total));
                }
            }
            Mode::Plain | Mode::Json => {
                BYTES.fetch_add(n, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn finish(&self) {
        end_phase("finish", ProgressBar::finish_and_clear);
    }

    fn fail(&self) {
        end_phase("fail", ProgressBar::abandon);
    }
}

/// Close the current phase: its bar (`close_bar`), or a last report line (`event`).
fn end_phase(event: &str, close_bar: fn(&ProgressBar)) {
    match mode() {
        Mode::Bar => {
            BYTES.store(0, Ordering::Relaxed);
            if let Some(b) = ACTIVE.lock().expect("progress lock").take() {
                close_bar(&b);
            }
        }
        Mode::Plain | Mode::Json => {
            if let Some(p) = PHASE.lock().expect("progress lock").take() {
                report(&p, event);
            }
        }
        _ => {}
    }
}

impl Bar {
    fn maybe_report(&self) {
        let every = if mode() == Mode::Json {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        let Ok(mut guard) = PHASE.try_lock() else {
            return; // another thread is reporting
        };
        if let Some(p) = guard.as_mut() {
            if p.last_report.elapsed() >= every {
                p.last_report = Instant::now();
                report(p, "progress");
            }
        }
    }
}

/// `tracing` writer that suspends the active bar while printing, and wraps lines as
/// JSON events in json mode.
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        if mode() == Mode::Json {
            let text = String::from_utf8_lossy(&line);
            let _ = writeln!(
                io::stderr(),
                "{}",
                json!({"event": "log", "message": text.trim_end()})
            );
            return;
        }
        let print = || {
            let _ = io::stderr().write_all(&line);
        };
        match ACTIVE.lock().ok().and_then(|g| g.clone()) {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}
