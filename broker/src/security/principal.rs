//! The principal of a TLS client certificate: its subject's distinguished name in RFC 2253
//! form (`CN=alice,OU=eng,O=Example`, as Java's `X500Principal.getName()` prints it), mapped
//! by `ssl.principal.mapping.rules` to the name in `User:<name>`.
//!
//! The rules are Kafka's: a comma-separated list of `RULE:<pattern>/<replacement>/[L|U]` and
//! `DEFAULT`, tried in order. A rule whose regular expression matches the whole DN yields the
//! replacement (`$1` names a group; `\/` is a `/` inside pattern or replacement), lower- or
//! upper-cased with `L` or `U`; `DEFAULT` yields the DN unchanged. A DN no rule matches fails
//! the connection's authentication, as in Kafka.

use regex::Regex;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    /// The DN as it is.
    Default,
    /// A pattern over the whole DN and what to make of it.
    Replace {
        pattern: Regex,
        /// In `regex`'s replacement syntax (`${1}`).
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// The parsed `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses Kafka's rule list; the error says what is wrong where.
    pub fn parse(rules: &str) -> Result<Self, String> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("`{rest}`: a rule is RULE:pattern/replacement/[LU]"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("`{rest}`: a rule is RULE:pattern/replacement/[LU]"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = Regex::new(&format!("^(?:{})$", pattern.replace("\\/", "/")))
                    .map_err(|e| format!("`{pattern}`: {e}"))?;
                parsed.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!("`{rest}`: expected DEFAULT or RULE:"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("`{rest}`: rules are separated by commas")),
            }
        }
        Ok(Self { rules: parsed })
    }

    /// The name `dn` maps to, or `None` when no rule matches.
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => {
                if !pattern.is_match(dn) {
                    return None;
                }
                let name = pattern.replace_all(dn, replacement.as_str()).into_owned();
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

/// The text up to the next unescaped `/`, and what follows it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '/' if !escaped => return Some((s[..i].to_string(), &s[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// A Java `Matcher.replaceAll` replacement (`$1`, `\$`) in `regex`'s syntax (`${1}`, `$$`).
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut group = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    group.push(*d);
                    chars.next();
                }
                if group.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{group}}}"));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The subject DN of a DER certificate in RFC 2253 form, or `None` if it does not parse.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = match oid.as_str() {
                        "2.5.4.3" => "CN".to_string(),
                        "2.5.4.6" => "C".to_string(),
                        "2.5.4.7" => "L".to_string(),
                        "2.5.4.8" => "ST".to_string(),
                        "2.5.4.9" => "STREET".to_string(),
                        "2.5.4.10" => "O".to_string(),
                        "2.5.4.11" => "OU".to_string(),
                        "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                        other => other.to_string(),
                    };
                    let value = attr.as_str().map(escape).unwrap_or_else(|_| {
                        let hex: String = attr
                            .attr_value()
                            .data
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        format!("#{hex}")
                    });
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    // RFC 2253 prints the most specific RDN (last in the certificate) first.
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules_map_distinguished_names() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            mapper
                .map("CN=kafka-server1,OU=ServiceUsers,O=Org")
                .as_deref(),
            Some("kafka-server1")
        );
        assert_eq!(
            mapper
                .map("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Palo Alto,ST=CA,C=US")
                .as_deref(),
            Some("duke@javasoft")
        );
        assert_eq!(mapper.map("cn=Alice,O=x").as_deref(), Some("alice"));
        assert_eq!(mapper.map("OU=nobody").as_deref(), Some("OU=nobody"));
        let upper = PrincipalMapper::parse("RULE:^CN=([^,]*)(,.*)?$/$1/U").unwrap();
        assert_eq!(upper.map("CN=carol,O=x").as_deref(), Some("CAROL"));
        assert_eq!(upper.map("O=x"), None);
        // The operator's rule for its REPLICATION listener: every subject is the brokers'.
        let all = PrincipalMapper::parse("RULE:^.*$/weir-broker/").unwrap();
        assert_eq!(
            all.map("CN=events-0,O=weir.dev").as_deref(),
            Some("weir-broker")
        );
        let slash = PrincipalMapper::parse(r"RULE:^CN=(.*)\/(.*)$/$2\/$1/").unwrap();
        assert_eq!(slash.map("CN=a/b").as_deref(), Some("b/a"));
        assert_eq!(
            PrincipalMapper::parse("DEFAULT")
                .unwrap()
                .map("CN=x,O=y")
                .as_deref(),
            Some("CN=x,O=y")
        );
        assert!(PrincipalMapper::parse("RULE:^CN=(.*)$").is_err());
        assert!(PrincipalMapper::parse("NONSENSE").is_err());
        assert!(PrincipalMapper::parse("RULE:(/x/").is_err());
    }

    #[test]
    fn the_subject_is_printed_as_rfc_2253() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen encodes CN before O; RFC 2253 (and Java) print the last encoded RDN first.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example, Inc");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some("O=Example\\, Inc,CN=alice")
        );
        assert_eq!(subject_dn(b"garbage"), None);
    }
}
