//! Progress display: an `indicatif` spinner/bar on a terminal, nothing otherwise. Log
//! lines go through the bar's writer so they do not tear it.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use arbor_repo::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Draws a bar on stderr when it is a terminal.
pub struct Bar {
    enabled: bool,
}

impl Bar {
    pub fn new() -> Bar {
        Bar {
            enabled: io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{prefix:>8} {spinner} {pos} {per_sec} {elapsed}")
                    .expect("static template"),
            ),
        };
        bar.set_prefix(phase.to_string());
        *ACTIVE.lock().expect("progress lock") = Some(bar);
    }

    fn inc(&self, n: u64) {
        if let Some(b) = ACTIVE.lock().expect("progress lock").as_ref() {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(b) = ACTIVE.lock().expect("progress lock").take() {
            b.finish_and_clear();
        }
    }
}

/// `tracing` writer that suspends the active bar while printing.
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
        let print = || {
            let _ = io::stderr().write_all(&line);
        };
        match ACTIVE.lock().ok().and_then(|g| g.clone()) {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}
