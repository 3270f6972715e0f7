//! The rule set the server runs: the built-in pack or an operator's file,
//! plus the config's extra whitelist, reloaded when the file changes.
//!
//! A reload that fails (TOML error, bad regex, unknown field) is reported
//! with the file, line and column, and the running rules stay: a typo in
//! production must not switch detection off.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mirage_rules::RuleSet;

/// Where the rules come from.
#[derive(Debug)]
pub struct RuleSource {
    file: Option<PathBuf>,
    extra_whitelist: Vec<String>,
    /// (modified time, length) of the file as last loaded or tried.
    seen: Option<(SystemTime, u64)>,
}

impl RuleSource {
    /// `file`: a rule file replacing the built-in pack (`None`: built-in).
    pub fn new(file: Option<PathBuf>, extra_whitelist: Vec<String>) -> Self {
        RuleSource {
            file,
            extra_whitelist,
            seen: None,
        }
    }

    /// The rule file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Load the rules now. The error is one line: `file:line:col: problem`.
    pub fn load(&mut self) -> Result<RuleSet, String> {
        let mut set = match &self.file {
            None => RuleSet::builtin(),
            Some(path) => {
                self.seen = stamp(path);
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: cannot read rule file: {e}", path.display()))?;
                RuleSet::parse(&text).map_err(|e| {
                    format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
                })?
            }
        };
        let extra: Vec<&str> = self.extra_whitelist.iter().map(String::as_str).collect();
        set.extend_whitelist(&extra)
            .map_err(|e| format!("rules.whitelist: {e}"))?;
        Ok(set)
    }

    /// `Some(result)` when the file changed since the last load (by
    /// modification time or size), `None` when it did not or there is no
    /// file.
    pub fn reload_if_changed(&mut self) -> Option<Result<RuleSet, String>> {
        let path = self.file.as_ref()?;
        let now = stamp(path);
        if now == self.seen {
            return None;
        }
        Some(self.load())
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
