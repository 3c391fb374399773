use std::{ops::Range, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read at all.
    #[error("cannot read policy {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse, or a value in it is wrong.
    #[error("{}:{line}:{column}: {where_}{message}\n    {text}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        /// The table and field at the error, e.g. "[[credentials]] field `kind`: ".
        where_: String,
        message: String,
        /// The offending line, for the eye.
        text: String,
    },
}

impl PolicyError {
    /// An error at byte `span` of `text`; without a span, at the start of the file.
    pub fn at(
        path: &std::path::Path,
        text: &str,
        span: Option<Range<usize>>,
        message: &str,
    ) -> Self {
        let start = span.map_or(0, |s| s.start).min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let line_text = text[line_start..].lines().next().unwrap_or_default();
        // The table is the nearest header above; the field is the key on the line, if any.
        let table = std::iter::once(line_text)
            .chain(before.lines().rev())
            .find(|l| l.trim_start().starts_with('['))
            .map(|l| l.trim().to_owned());
        let field = line_text
            .split_once('=')
            .map(|(k, _)| k.trim().to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        let mut where_ = String::new();
        if !message.starts_with('[') {
            if let Some(table) = table {
                where_.push_str(&table);
                where_.push(' ');
            }
            if let Some(field) = field {
                where_.push_str(&format!("field `{field}`"));
            }
            if !where_.is_empty() {
                where_ = format!("{}: ", where_.trim_end());
            }
        }
        Self::Invalid {
            path: path.to_owned(),
            line,
            column,
            where_,
            message: message.trim().to_owned(),
            text: line_text.trim_end().to_owned(),
        }
    }
}
