//! Durations as operators write them in TOML and on the command line: `90s`, `10s`, `1500ms`,
//! `5m`, `2h`, `30d`. A bare number is refused: its unit would be a guess.

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {t:?} has no unit (use ms, s, m, h or d)"))?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration {t:?} does not start with a whole number"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "duration {t:?} has unknown unit {unit:?} (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {t:?} is too large"))
}

pub mod serde_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("30d").unwrap(), Duration::from_secs(30 * 86400));
    }

    #[test]
    fn refusals_name_the_input() {
        for bad in ["90", "s", "-5s", "5 weeks", "1.5s", "99999999999999999999d"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("duration"), "{bad}: {e}");
        }
    }
}
