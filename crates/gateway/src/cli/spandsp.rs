//! Runs spandsp's DTMF receiver through our harness (`tools/spandsp/harness.c`, built by
//! `scripts/spandsp.sh`) so that both detectors hear the same samples in the same run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Where `scripts/spandsp.sh` puts the harness, relative to the repository root.
const DEFAULT: &str = "target/spandsp/harness";

/// A built harness.
pub(crate) struct Spandsp {
    path: PathBuf,
}

/// A press as spandsp reported it: key, start and end in samples.
pub(crate) struct SpandspPress {
    pub key: char,
    pub start: u64,
    #[allow(dead_code)] // printed by nothing yet; kept for timing comparisons
    pub end: u64,
}

impl Spandsp {
    /// The harness named on the command line, in `TONEGATE_SPANDSP`, or at its default place.
    pub(crate) fn find(explicit: Option<&Path>) -> Option<Spandsp> {
        let candidates = [
            explicit.map(Path::to_path_buf),
            std::env::var_os("TONEGATE_SPANDSP").map(PathBuf::from),
            Some(PathBuf::from(DEFAULT)),
            Some(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../..")
                    .join(DEFAULT),
            ),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
            .map(|path| Spandsp { path })
    }

    /// The harness's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// spandsp's presses in `samples` (8 kHz).
    pub(crate) fn detect(&self, samples: &[i16]) -> anyhow::Result<Vec<SpandspPress>> {
        let mut child = Command::new(&self.path)
            .arg("detect")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.path.display()))?;
        let mut stdin = child.stdin.take().expect("piped");
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let stdout = child.stdout.take().expect("piped");
        let mut presses = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let mut f = line.split_whitespace();
            let (Some(key), Some(start), Some(end)) = (f.next(), f.next(), f.next()) else {
                bail!("unexpected line from the spandsp harness: {line}");
            };
            presses.push(SpandspPress {
                key: key.chars().next().unwrap_or('?'),
                start: start.parse()?,
                end: end.parse()?,
            });
        }
        writer.join().expect("writer thread")?;
        let status = child.wait()?;
        if !status.success() {
            bail!("the spandsp harness failed: {status}");
        }
        Ok(presses)
    }
}
