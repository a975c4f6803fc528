//! librdkafka's log lines of the nemesis clients, printed with the client's name when a
//! debug variable names librdkafka debug contexts (`WEIR_NEMESIS_TXN_DEBUG` for the
//! transactional processors, `WEIR_NEMESIS_PRODUCER_DEBUG` for the idempotent producer, e.g.
//! `eos,msg`); dropped otherwise (they are many under faults).

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::ClientContext;

/// The debug variable of the transactional processors' clients.
pub const TXN_DEBUG: &str = "WEIR_NEMESIS_TXN_DEBUG";
/// The debug variable of the idempotent producer.
pub const PRODUCER_DEBUG: &str = "WEIR_NEMESIS_PRODUCER_DEBUG";
/// The debug variable of the committing group's members.
pub const MEMBER_DEBUG: &str = "WEIR_NEMESIS_MEMBER_DEBUG";

/// A client context that prints librdkafka's log lines when its debug variable is set.
#[derive(Debug, Clone)]
pub struct ClientLog {
    name: String,
    print: bool,
}

impl ClientLog {
    /// The log of the client `name`, printed if `variable` is set.
    pub fn new(name: String, variable: &str) -> ClientLog {
        ClientLog {
            name,
            print: std::env::var_os(variable).is_some(),
        }
    }

    /// Prints one line of librdkafka's log. An offset reset after an error (librdkafka logs
    /// it as a warning: a truncation found by KIP-320 validation, an out-of-range fetch) is
    /// always printed: it moves the consumer, and a test that fails for it must say so.
    /// Returns whether the line was such a reset.
    pub fn print(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) -> bool {
        let reset = fac == "OFFSET"
            && matches!(
                level,
                RDKafkaLogLevel::Emerg
                    | RDKafkaLogLevel::Alert
                    | RDKafkaLogLevel::Critical
                    | RDKafkaLogLevel::Error
                    | RDKafkaLogLevel::Warning
            );
        if self.print || reset {
            eprintln!(
                "{} {} {level:?} {fac}: {log_message}",
                utc_time(),
                self.name
            );
        }
        reset
    }
}

/// Prints a line of the test's own (what a processor did to its client) beside librdkafka's,
/// when `variable` is set.
pub fn note(variable: &str, name: &str, what: std::fmt::Arguments<'_>) {
    if std::env::var_os(variable).is_some() {
        eprintln!("{} {name} {what}", utc_time());
    }
}

/// The time of day in UTC (`HH:MM:SS.mmm`), to set a client's line beside the brokers' logs.
pub fn utc_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let day = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        now.subsec_millis()
    )
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.print(level, fac, log_message);
    }
}

/// Turns on the librdkafka debug contexts `variable` names, if it is set.
pub fn with_debug(config: &mut ClientConfig, variable: &str) {
    if let Some(contexts) = std::env::var(variable).ok().filter(|c| !c.is_empty()) {
        // rdkafka applies its own level to the client once created (from the `log` crate's
        // level, which no logger raises here), overriding a `log_level` property: without
        // this, debug lines stop once the client exists.
        config
            .set("debug", contexts)
            .set_log_level(RDKafkaLogLevel::Debug);
    } else {
        // Warnings reach [`ClientLog::print`] (which keeps only offset resets): at the
        // `log` crate's level librdkafka would not even hand them over.
        config.set_log_level(RDKafkaLogLevel::Warning);
    }
}
