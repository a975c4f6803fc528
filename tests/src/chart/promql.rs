//! Just enough PromQL for the dashboard checks: the metric names an expression reads, and
//! Grafana's variables replaced by values promtool can parse. (Parsing itself is promtool's:
//! the checks hand it every expression as a recording rule.)

use std::collections::BTreeSet;

/// Aggregation operators and keywords: never metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];
/// Keywords followed by a list of label names in parentheses.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects (identifiers that are neither functions, keywords, label
/// names nor inside strings, label matchers or range brackets).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_until(&chars, i, '}');
        } else if c == '[' {
            i = skip_until(&chars, i, ']');
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (1e3, 0.99, 5m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let called = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) && called {
                i = skip_until(&chars, next, ')');
            } else if !called && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The index after the string starting at `start` (its quote), escapes honoured.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// The index after the first `close` from `start`, skipping strings on the way.
fn skip_until(chars: &[char], start: usize, close: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i),
            c if c == close => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Grafana's built-in interval variables.
const INTERVALS: &[&str] = &["__rate_interval", "__interval", "__range"];

/// The template variables (`$name`, `${name}`) `expr` uses.
pub fn variables(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        if len > 0 {
            out.insert(body[..len].to_string());
        }
    }
    out
}

/// `expr` with Grafana's variables replaced: intervals by `5m`, every other variable (they
/// appear as regex label matchers, `=~"$namespace"`) by `.*`.
pub fn substitute(expr: &str) -> String {
    let mut out = expr.to_string();
    let mut names: Vec<String> = variables(expr).into_iter().collect();
    // Longest first, so `$group` does not eat the start of `$groups`.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let value = if INTERVALS.contains(&name.as_str()) {
            "5m"
        } else {
            ".*"
        };
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn metric_names_skip_functions_keywords_labels_and_strings() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (api, le) (rate(weir_request_duration_seconds_bucket{namespace=~"$namespace", api="Fetch"}[$__rate_interval])))"#
            ),
            ["weir_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names("weir_log_dir_usable_bytes / weir_log_dir_total_bytes < 0.5 and predict_linear(weir_log_dir_usable_bytes[6h], 24 * 3600) < 0"),
            ["weir_log_dir_total_bytes", "weir_log_dir_usable_bytes"]
        );
        assert_eq!(
            names(
                r#"count(up{job="weir"} == 1) or on (pod) group_left (cluster) max without (x) (a:b_c offset 5m)"#
            ),
            ["a:b_c", "up"]
        );
    }

    #[test]
    fn variables_are_found_and_replaced() {
        let expr = r#"sum(rate(x{cluster=~"$cluster", topic=~"${topic}"}[$__rate_interval]))"#;
        assert_eq!(
            variables(expr).into_iter().collect::<Vec<_>>(),
            ["__rate_interval", "cluster", "topic"]
        );
        assert_eq!(
            substitute(expr),
            r#"sum(rate(x{cluster=~".*", topic=~".*"}[5m]))"#
        );
    }
}
