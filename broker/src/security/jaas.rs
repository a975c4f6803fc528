//! Kafka's JAAS configuration text, as `listener.name.<l>.<mechanism>.sasl.jaas.config`
//! carries it: `LoginModuleClass flag key="value" key2=value2;`.
//!
//! One login module per setting, as Kafka requires of a broker's listener. Values are bare
//! words or double-quoted strings in which `\` escapes the next character.

use std::collections::BTreeMap;

/// One parsed login module entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasEntry {
    /// The login module class (`org.apache.kafka.common.security.plain.PlainLoginModule`).
    pub login_module: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    /// The options, in order of appearance (a later duplicate wins).
    pub options: BTreeMap<String, String>,
}

/// Parses one JAAS login module entry; the error says what was expected where.
pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let mut tokens = Tokens {
        chars: text.chars().peekable(),
    };
    let login_module = tokens.word().ok_or("expected a login module class name")?;
    let flag = tokens
        .word()
        .ok_or("expected a control flag after the login module")?;
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!(
            "`{flag}` is not a control flag (required, requisite, sufficient, optional)"
        ));
    }
    let mut options = BTreeMap::new();
    loop {
        tokens.skip_space();
        match tokens.chars.peek() {
            Some(';') => {
                tokens.chars.next();
                tokens.skip_space();
                if tokens.chars.peek().is_some() {
                    return Err("only one login module may be configured".to_string());
                }
                break;
            }
            None => return Err("the entry must end with `;`".to_string()),
            _ => {}
        }
        let key = tokens.word().ok_or("expected an option name")?;
        tokens.skip_space();
        if tokens.chars.next() != Some('=') {
            return Err(format!("expected `=` after option `{key}`"));
        }
        tokens.skip_space();
        let value = if tokens.chars.peek() == Some(&'"') {
            tokens.chars.next();
            tokens.quoted()?
        } else {
            tokens
                .word()
                .ok_or_else(|| format!("expected a value for option `{key}`"))?
        };
        options.insert(key, value);
    }
    Ok(JaasEntry {
        login_module,
        flag,
        options,
    })
}

struct Tokens<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Tokens<'_> {
    fn skip_space(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    /// A run of characters other than whitespace, `=`, `;` and `"`.
    fn word(&mut self) -> Option<String> {
        self.skip_space();
        let mut word = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                break;
            }
            word.push(c);
            self.chars.next();
        }
        (!word.is_empty()).then_some(word)
    }

    /// The rest of a quoted string whose opening quote was consumed.
    fn quoted(&mut self) -> Result<String, String> {
        let mut value = String::new();
        loop {
            match self.chars.next() {
                Some('"') => return Ok(value),
                Some('\\') => value.push(self.chars.next().ok_or("unterminated quoted value")?),
                Some(c) => value.push(c),
                None => return Err("unterminated quoted value".to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_plain_example() {
        let e = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret"
               user_admin="admin-secret" user_alice="a \"quoted\" secret;=";"#,
        )
        .unwrap();
        assert_eq!(
            e.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(e.flag, "required");
        assert_eq!(e.options["user_alice"], "a \"quoted\" secret;=");
        assert_eq!(e.options["username"], "admin");
        assert_eq!(e.options.len(), 4);
        let bare = parse("M optional a=b;").unwrap();
        assert_eq!(bare.options["a"], "b");
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        for (text, needle) in [
            ("", "login module"),
            ("M", "control flag"),
            ("M always;", "control flag"),
            ("M required a=\"b\"", "end with"),
            ("M required a \"b\";", "`=`"),
            ("M required a=\"b;", "unterminated"),
            ("M required; N required;", "only one"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
