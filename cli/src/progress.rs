//! Progress display on stderr, in one of four modes (`--progress`):
//! - `bar`: an `indicatif` bar per phase with counts, bytes, rate and ETA (the default on
//!   a terminal);
//! - `plain`: a log line every 10 s while a phase runs, and one when it ends
//!   (the default when stderr is not a terminal, e.g. in CI logs);
//! - `json`: typed, versioned JSON lines ([`Event`]), at most one `progress` line per
//!   second per phase, for CI to parse; log lines are `{"event":"log",...}`;
//! - `none`.
//!
//! One [`Reporter`] object owns the display (its `MultiProgress`, the phase being shown)
//! and is what commands hand to the libraries (it implements their `Progress` trait);
//! the process's reporter is set once by `main` ([`install`]) so that log lines
//! ([`LogWriter`]) go through it and do not tear a bar.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arbor_repo::progress::Progress;
use clap::ValueEnum;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

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

/// The JSON lines of `--progress=json`. Every line carries `"event"` (the variant, in
/// lowercase) and `"version"` ([`EVENT_VERSION`]); fields are only ever added.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event<'a> {
    Start(PhaseState<'a>),
    Progress(PhaseState<'a>),
    Finish(PhaseState<'a>),
    Fail(PhaseState<'a>),
    /// A step of `arbor release` begins (`compose`, `delta`, `publish`).
    Step {
        version: u32,
        step: &'a str,
    },
    Log {
        version: u32,
        message: &'a str,
    },
}

/// The version every JSON event line carries.
pub const EVENT_VERSION: u32 = 1;

/// Where a phase is.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseState<'a> {
    pub version: u32,
    pub phase: &'a str,
    pub done: u64,
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes: u64,
    pub seconds: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The phase being shown.
struct Phase {
    name: String,
    total: Option<u64>,
    started: Instant,
    last_report: Instant,
    done: u64,
    bytes: u64,
    bar: Option<ProgressBar>,
}

/// The progress display of one process.
pub struct Reporter {
    mode: Mode,
    multi: MultiProgress,
    phase: Mutex<Option<Phase>>,
}

static CURRENT: OnceLock<Arc<Reporter>> = OnceLock::new();

/// Set up the process's reporter for `mode` (`Auto` resolves against stderr).
pub fn install(mode: Mode) {
    let mode = match mode {
        Mode::Auto if io::stderr().is_terminal() => Mode::Bar,
        Mode::Auto => Mode::Plain,
        m => m,
    };
    let _ = CURRENT.set(Arc::new(Reporter {
        mode,
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        phase: Mutex::new(None),
    }));
}

/// The process's reporter (a plain one if `install` was not called).
pub fn reporter() -> Arc<Reporter> {
    CURRENT
        .get_or_init(|| {
            Arc::new(Reporter {
                mode: Mode::Plain,
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                phase: Mutex::new(None),
            })
        })
        .clone()
}

/// The progress sink commands hand to the libraries: the process's reporter.
pub struct Bar(Arc<Reporter>);

impl Bar {
    pub fn new() -> Bar {
        Bar(reporter())
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        self.0.start(phase, total)
    }
    fn inc(&self, n: u64) {
        self.0.inc(n)
    }
    fn bytes(&self, n: u64) {
        self.0.bytes(n)
    }
    fn finish(&self) {
        self.0.end_phase(false)
    }
    fn fail(&self) {
        self.0.end_phase(true)
    }
}

/// A `release` step begins (json mode: a `step` event).
pub fn step(name: &str) {
    reporter().emit(&Event::Step {
        version: EVENT_VERSION,
        step: name,
    });
}

/// Say something on stderr: a plain line, or a `log` event in json mode.
pub fn say(msg: &str) {
    reporter().say(msg)
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

impl Reporter {
    fn emit(&self, e: &Event<'_>) {
        if self.mode == Mode::Json {
            if let Ok(line) = serde_json::to_string(e) {
                eprintln!("{line}");
            }
        }
    }

    fn say(&self, msg: &str) {
        match self.mode {
            Mode::Json => self.emit(&Event::Log {
                version: EVENT_VERSION,
                message: msg,
            }),
            Mode::None => {}
            _ => self.print(msg.as_bytes(), true),
        }
    }

    /// Write on stderr without tearing a bar.
    fn print(&self, bytes: &[u8], newline: bool) {
        let write = || {
            let mut e = io::stderr().lock();
            let _ = e.write_all(bytes);
            if newline {
                let _ = e.write_all(b"\n");
            }
        };
        if self.mode == Mode::Bar {
            self.multi.suspend(write);
        } else {
            write();
        }
    }

    fn state<'a>(p: &'a Phase) -> PhaseState<'a> {
        PhaseState {
            version: EVENT_VERSION,
            phase: &p.name,
            done: p.done,
            total: p.total,
            bytes: p.bytes,
            seconds: (p.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }

    /// A plain line for `p` at `event` (`None`: nothing to say).
    fn plain_line(p: &Phase, event: &str) -> Option<String> {
        let secs = p.started.elapsed().as_secs_f64();
        let count = match p.total {
            Some(t) => format!("{}/{t}", p.done),
            None => format!("{}", p.done),
        };
        let bytes = if p.bytes > 0 {
            format!(", {}", human_bytes(p.bytes))
        } else {
            String::new()
        };
        let what = match event {
            // Plain logs stay short: a line when a phase ends, and every 10 s while a
            // long one runs.
            "start" => return None,
            "finish" => format!("done: {count}{bytes} in {secs:.1}s"),
            "fail" => format!("failed at {count}{bytes} after {secs:.1}s"),
            _ => {
                let eta = match p.total {
                    Some(t) if p.done > 0 && t > p.done => {
                        format!(", eta {:.0}s", secs * (t - p.done) as f64 / p.done as f64)
                    }
                    _ => String::new(),
                };
                format!("{count}{bytes} after {secs:.0}s{eta}")
            }
        };
        Some(format!("{}: {what}", p.name))
    }

    fn report(&self, p: &Phase, event: &str) {
        match self.mode {
            Mode::Json => {
                let s = Self::state(p);
                self.emit(&match event {
                    "start" => Event::Start(s),
                    "finish" => Event::Finish(s),
                    "fail" => Event::Fail(s),
                    _ => Event::Progress(s),
                });
            }
            Mode::Plain => {
                if let Some(line) = Self::plain_line(p, event) {
                    eprintln!("{line}");
                }
            }
            _ => {}
        }
    }

    fn start(&self, phase: &str, total: Option<u64>) {
        if self.mode == Mode::None {
            return;
        }
        let bar = (self.mode == Mode::Bar).then(|| {
            let style = match total {
                Some(_) => ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
                None => ProgressStyle::with_template(
                    "{prefix:>8} {spinner} {pos} {msg} {per_sec} {elapsed}",
                )
                .expect("static template"),
            };
            let bar = self
                .multi
                .add(ProgressBar::new(total.unwrap_or(0)).with_style(style));
            if total.is_none() {
                bar.unset_length();
            }
            bar.set_prefix(phase.to_string());
            bar
        });
        let now = Instant::now();
        let p = Phase {
            name: phase.to_string(),
            total,
            started: now,
            last_report: now,
            done: 0,
            bytes: 0,
            bar,
        };
        self.report(&p, "start");
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    fn inc(&self, n: u64) {
        let every = if self.mode == Mode::Json {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        let mut guard = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = guard.as_mut() else {
            return;
        };
        p.done += n;
        if let Some(b) = &p.bar {
            b.inc(n);
        } else if p.last_report.elapsed() >= every {
            p.last_report = Instant::now();
            self.report(p, "progress");
        }
    }

    fn bytes(&self, n: u64) {
        let mut guard = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = guard.as_mut() {
            p.bytes += n;
            if let Some(b) = &p.bar {
                b.set_message(human_bytes(p.bytes));
            }
        }
    }

    /// Close the current phase: its bar, or a last report line.
    fn end_phase(&self, failed: bool) {
        let taken = self.phase.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = taken {
            match &p.bar {
                Some(b) if failed => b.abandon(),
                Some(b) => {
                    b.finish_and_clear();
                    self.multi.remove(b);
                }
                None => self.report(&p, if failed { "fail" } else { "finish" }),
            }
        }
    }
}

/// `tracing` writer that goes through the reporter: it suspends the bars while
/// printing, and wraps lines as JSON events in json mode.
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
        let r = reporter();
        if r.mode == Mode::Json {
            let text = String::from_utf8_lossy(&line);
            r.say(text.trim_end());
        } else {
            r.print(&line, false);
        }
    }
}
