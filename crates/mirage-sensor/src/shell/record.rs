//! Session recordings in asciicast v2 (`<log_dir>/recordings/<session>.cast`):
//! a JSON header line, then one `[seconds, "o"|"i", text]` line per chunk.
//! Replayable with `asciinema play`. Bounded: after [`MAX_RECORDING`] bytes
//! the file stops growing (a marker says so).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Directory under the data dir.
pub const DIR_NAME: &str = "recordings";
/// Largest recording file, in bytes.
pub const MAX_RECORDING: u64 = 8 * 1024 * 1024;

/// An open recording.
pub struct Recorder {
    out: BufWriter<File>,
    started: Instant,
    written: u64,
    full: bool,
    /// Path relative to the data dir (what events name).
    pub relative: String,
}

impl Recorder {
    /// Create `data_dir/recordings/<name>.cast` with its header.
    pub fn create(
        data_dir: &Path,
        name: &str,
        width: u32,
        height: u32,
        term: &str,
    ) -> std::io::Result<Recorder> {
        let dir: PathBuf = data_dir.join(DIR_NAME);
        std::fs::create_dir_all(&dir)?;
        let file = File::create(dir.join(format!("{name}.cast")))?;
        let mut out = BufWriter::new(file);
        let header = serde_json::json!({
            "version": 2,
            "width": width.clamp(1, 1000),
            "height": height.clamp(1, 1000),
            "timestamp": chrono::Utc::now().timestamp(),
            "env": {"TERM": term, "SHELL": "/bin/bash"},
        });
        let line = format!("{header}\n");
        out.write_all(line.as_bytes())?;
        Ok(Recorder {
            out,
            started: Instant::now(),
            written: line.len() as u64,
            full: false,
            relative: format!("{DIR_NAME}/{name}.cast"),
        })
    }

    fn event(&mut self, code: &str, data: &[u8]) {
        if self.full || data.is_empty() {
            return;
        }
        let t = self.started.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(data);
        let line = format!(
            "[{t:.6}, \"{code}\", {}]\n",
            serde_json::Value::String(text.into_owned())
        );
        if self.written + line.len() as u64 > MAX_RECORDING {
            self.full = true;
            let _ = self.out.write_all(
                format!("[{t:.6}, \"o\", \"\\r\\n[recording truncated]\\r\\n\"]\n").as_bytes(),
            );
            return;
        }
        self.written += line.len() as u64;
        // Written through at once: a session can end in any state (client
        // gone, sensor killed) and the file is evidence.
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    /// Terminal output.
    pub fn output(&mut self, data: &[u8]) {
        self.event("o", data);
    }

    /// Keyboard input.
    pub fn input(&mut self, data: &[u8]) {
        self.event("i", data);
    }

    /// The terminal changed size (asciicast `r` event, `COLSxROWS`).
    pub fn resize(&mut self, cols: u32, rows: u32) {
        if cols == 0 || rows == 0 {
            return;
        }
        self.event(
            "r",
            format!("{}x{}", cols.clamp(1, 1000), rows.clamp(1, 1000)).as_bytes(),
        );
    }

    /// Flush to disk.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}
