//! Log capture for the leak tests: a `tracing_subscriber` writer that keeps everything the fmt
//! layer writes in one shared buffer, and the subscriber the leak tests install with it (every
//! level down to TRACE, no timestamps, no ANSI colours: plain text to search).
//!
//! How the subscriber is installed (per thread, per closure or globally) stays with each test.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full};
use tracing_subscriber::fmt::MakeWriter;

/// What [`LogCapture::subscriber`] returns: a fmt subscriber at TRACE writing into the
/// capture.
pub type CaptureSubscriber =
    tracing_subscriber::fmt::Subscriber<DefaultFields, Format<Full, ()>, LevelFilter, LogCapture>;

/// A shared buffer of log output. Clones write into the same buffer.
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// An empty capture.
    pub fn new() -> LogCapture {
        LogCapture::default()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("the fmt layer writes UTF-8")
    }

    /// A fmt subscriber that writes every event and span, down to TRACE, into this capture,
    /// without timestamps or ANSI colours.
    pub fn subscriber(&self) -> CaptureSubscriber {
        tracing_subscriber::fmt()
            .with_max_level(LevelFilter::TRACE)
            .with_writer(self.clone())
            .without_time()
            .with_ansi(false)
            .finish()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}
