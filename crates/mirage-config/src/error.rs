//! Configuration errors, each rendered as one line: file, position, key, problem.

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read config: {message}")]
    Read {
        /// File name.
        origin: String,
        /// OS error.
        message: String,
    },
    /// TOML syntax or a type/unknown-key error.
    #[error("{origin}{position}: {key_part}{message}")]
    Syntax {
        /// File name.
        origin: String,
        /// `:line:col` where known, else empty.
        position: String,
        /// `key 'a.b': ` where known, else empty.
        key_part: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// A value of the right type that is not acceptable.
    #[error("{origin}: key '{key}': {message}")]
    Invalid {
        /// File name.
        origin: String,
        /// Dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn toml(origin: &str, text: &str, key: &str, e: &toml::de::Error) -> Self {
        let position = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        let key_part = if key.is_empty() || key == "." {
            String::new()
        } else {
            format!("key '{key}': ")
        };
        // toml's messages may span lines; the CLI contract is one line.
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        ConfigError::Syntax {
            origin: origin.to_owned(),
            position,
            key_part,
            message,
        }
    }
}
