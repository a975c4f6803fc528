//! How the broker and the operator choose their log filter (`tracing` directives), so that both
//! read the same variables the same way.
//!
//! Each binary has a default that keeps Weir's own crates at INFO and every dependency at WARN
//! (openraft logs votes and state dumps at INFO; a newcomer's first screen should be Weir's).
//! `WEIR_LOG` (or, when it is unset, `RUST_LOG`) changes it: a filter that sets a level for
//! every target (`debug`, `info,openraft=warn`) replaces the default; one that only names
//! targets (`openraft=info`, `weir_broker::server=debug`) is added to it and wins for those
//! targets.

/// The variables read, first set wins.
pub const LOG_VARIABLES: [&str; 2] = ["WEIR_LOG", "RUST_LOG"];

/// The requested filter from the environment: the first of [`LOG_VARIABLES`] that is set.
pub fn requested_from_env() -> Option<String> {
    LOG_VARIABLES
        .iter()
        .find_map(|name| std::env::var(name).ok())
}

/// The directives to use: `default` when nothing (or only blanks) is requested; the request
/// alone when one of its directives is a bare level (it sets every target's level); otherwise
/// `default` followed by the request (a later directive for the same target replaces an
/// earlier one).
pub fn filter_directives(default: &str, requested: Option<&str>) -> String {
    let Some(requested) = requested.map(str::trim).filter(|r| !r.is_empty()) else {
        return default.to_string();
    };
    if requested.split(',').any(is_bare_level) {
        requested.to_string()
    } else {
        format!("{default},{requested}")
    }
}

/// Whether a directive is only a level (`tracing`'s names, any case, or a number 0 to 5).
fn is_bare_level(directive: &str) -> bool {
    const LEVELS: [&str; 11] = [
        "off", "error", "warn", "info", "debug", "trace", "0", "1", "2", "3", "4",
    ];
    let directive = directive.trim();
    directive == "5"
        || LEVELS
            .iter()
            .any(|level| directive.eq_ignore_ascii_case(level))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "warn,weir_broker=info";

    #[test]
    fn nothing_requested_is_the_default() {
        assert_eq!(filter_directives(DEFAULT, None), DEFAULT);
        assert_eq!(filter_directives(DEFAULT, Some("  ")), DEFAULT);
    }

    #[test]
    fn naming_targets_adds_to_the_default() {
        assert_eq!(
            filter_directives(DEFAULT, Some("openraft=info")),
            "warn,weir_broker=info,openraft=info"
        );
        assert_eq!(
            filter_directives(DEFAULT, Some("weir_broker::server=debug,h2=debug")),
            "warn,weir_broker=info,weir_broker::server=debug,h2=debug"
        );
    }

    #[test]
    fn a_level_for_everything_replaces_the_default() {
        assert_eq!(filter_directives(DEFAULT, Some("info")), "info");
        assert_eq!(filter_directives(DEFAULT, Some("DEBUG")), "DEBUG");
        assert_eq!(
            filter_directives(DEFAULT, Some("openraft=off, trace")),
            "openraft=off, trace"
        );
    }
}
