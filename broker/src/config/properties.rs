//! Java-style `.properties` files, the format Kafka's `server.properties` uses.
//!
//! Supported: `key=value` and `key: value` lines, `#` and `!` comments, blank lines, and
//! surrounding whitespace. Not supported (rejected with the line number): line continuations
//! and lines without a separator.

use std::path::Path;

use super::ConfigError;

/// Parses properties text; `file` names the source in error messages.
pub fn parse(text: &str, file: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let syntax = || ConfigError::Syntax {
            file: file.to_string(),
            line: index + 1,
            text: raw.to_string(),
        };
        if line.ends_with('\\') {
            return Err(syntax());
        }
        let split = line.find(['=', ':']).ok_or_else(syntax)?;
        let key = line[..split].trim();
        if key.is_empty() {
            return Err(syntax());
        }
        out.push((key.to_string(), line[split + 1..].trim().to_string()));
    }
    Ok(out)
}

/// Reads and parses a properties file.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(&text, &path.display().to_string())
}

/// Splits a `--set key=value` argument.
pub fn parse_assignment(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected key=value, found `{arg}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_and_separators() {
        let text = "# c\n! c\n\nnum.partitions = 3\nlog.dirs: /x\n";
        let got = parse(text, "f").unwrap();
        assert_eq!(
            got,
            vec![
                ("num.partitions".to_string(), "3".to_string()),
                ("log.dirs".to_string(), "/x".to_string())
            ]
        );
    }

    #[test]
    fn rejects_lines_without_separator_with_line_number() {
        let err = parse("a=1\nnonsense\n", "server.properties").unwrap_err();
        assert_eq!(
            err.to_string(),
            "server.properties:2: expected `key=value`, found `nonsense`"
        );
    }

    #[test]
    fn assignment_needs_a_key() {
        assert!(parse_assignment("=3").is_err());
        assert!(parse_assignment("x").is_err());
        assert_eq!(
            parse_assignment("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
    }
}
