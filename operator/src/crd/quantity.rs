//! Kubernetes resource quantities (`100Gi`, `1.5T`, `500M`): the pattern the schema checks and
//! a parser to compare sizes (a volume may grow, never shrink).

/// The quantity syntax, as the API server's own OpenAPI describes `resource.Quantity`.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// The value of a quantity in base units (bytes for storage), rounded down; `None` when it is
/// not a quantity or does not fit.
pub fn to_units(quantity: &str) -> Option<u128> {
    let q = quantity.trim().trim_start_matches('+');
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // value = digits / 10^scale * multiplier, computed exactly in integers.
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = u32::try_from(fraction.len()).ok()?;
    let (numerator, denominator): (u128, u128) = match suffix {
        "" => (1, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        exponent => {
            let e: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            let power = 10u128.checked_pow(e.unsigned_abs())?;
            if e >= 0 {
                (power, 1)
            } else {
                (1, power)
            }
        }
    };
    let denominator = denominator.checked_mul(10u128.checked_pow(scale)?)?;
    Some(digits.checked_mul(numerator)? / denominator)
}

#[cfg(test)]
mod tests {
    use super::to_units;

    #[test]
    fn binary_decimal_and_exponent_suffixes() {
        assert_eq!(to_units("100Gi"), Some(100 << 30));
        assert_eq!(to_units("1.5Ti"), Some(3 << 39));
        assert_eq!(to_units("500M"), Some(500_000_000));
        assert_eq!(to_units("1e3"), Some(1000));
        assert_eq!(to_units("2048"), Some(2048));
        assert_eq!(to_units(".5Ki"), Some(512));
        assert_eq!(to_units("1500m"), Some(1));
        assert!(to_units("10Gi").unwrap() > to_units("10G").unwrap());
    }

    #[test]
    fn junk_is_not_a_quantity() {
        for bad in ["", "Gi", "ten", "10GB", "1.2.3", "10 Gi"] {
            assert_eq!(to_units(bad), None, "{bad}");
        }
    }
}
