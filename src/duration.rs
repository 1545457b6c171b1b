//! Durations as people write them in scenarios (`30s`, `2m`, `500ms`, `1h30m`).
//!
//! One newtype, so that every duration in the model parses, prints and appears in the JSON
//! Schema the same way. `humantime` does the parsing: it is the well-kept crate for exactly
//! this format, and it rejects what it does not understand instead of guessing.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written as `30s`, `2m`, `500ms` or `1h30m` (a bare number is
/// seconds). Zero is representable on purpose: validation decides where it is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    /// The wrapped [`Duration`].
    pub fn get(self) -> Duration {
        self.0
    }

    /// Seconds as a float, for arithmetic on timelines.
    pub fn secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// From seconds.
    pub fn from_secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    /// From milliseconds.
    pub fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

/// The longest duration a scenario may write (about 31 years). Far above any real gameday,
/// it keeps sums of durations (a timeline of many phases) and `Instant + Duration` far from
/// overflow, which would panic instead of reporting an error.
pub const MAX_SECS: u64 = 1_000_000_000;

/// Parses `30s`, `2m`, `500ms`, `1h30m`, or a bare number of seconds (`45`, `0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_unbounded(s)?;
    if d > Duration::from_secs(MAX_SECS) {
        return Err(format!(
            "`{}` is too long; durations are limited to {MAX_SECS} seconds",
            s.trim()
        ));
    }
    Ok(d)
}

fn parse_unbounded(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; expected e.g. `30s`, `2m`, `500ms`".into());
    }
    if t.starts_with('-') {
        return Err(format!("`{t}` is negative; durations must be positive"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || secs > MAX_SECS as f64 {
            return Err(format!("`{t}` is not a usable number of seconds"));
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{t}` is not a duration ({e}); expected e.g. `30s`, `2m`, `500ms`"))
}

impl std::str::FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Dur)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d.subsec_nanos() == 0 {
            let s = d.as_secs();
            let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if m > 0 {
                out.push_str(&format!("{m}m"));
            }
            if s > 0 {
                out.push_str(&format!("{s}s"));
            }
            return f.write_str(&out);
        }
        if d.as_nanos() % 1_000_000 == 0 && d < Duration::from_secs(10) {
            return write!(f, "{}ms", d.as_millis());
        }
        write!(f, "{:.3}s", d.as_secs_f64())
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30s`, `2m` or `500ms`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                parse_duration(&v.to_string()).map(Dur).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                if v < 0 {
                    return Err(E::custom(format!(
                        "`{v}` is negative; durations must be positive"
                    )));
                }
                parse_duration(&v.to_string()).map(Dur).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                parse_duration(&v.to_string()).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for Dur {
    fn schema_name() -> String {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::{
            InstanceType, Metadata, SchemaObject, SingleOrVec, StringValidation,
        };
        SchemaObject {
            instance_type: Some(SingleOrVec::Vec(vec![
                InstanceType::String,
                InstanceType::Number,
            ])),
            metadata: Some(Box::new(Metadata {
                description: Some(
                    "A duration: `30s`, `2m`, `500ms`, `1h30m`, or a number of seconds.".into(),
                ),
                examples: vec![serde_json::json!("30s"), serde_json::json!("500ms")],
                ..Default::default()
            })),
            string: Some(Box::new(StringValidation {
                pattern: Some(
                    r"^\s*([0-9]+(\.[0-9]+)?\s*(ns|us|µs|ms|s|sec|m|min|h|hr|d)?\s*)+$".into(),
                ),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("soon").is_err());
        // Regression: `5000000000000000h` parsed, then summing phases overflowed and panicked.
        assert!(parse_duration("5000000000000000h").is_err());
        assert!(parse_duration("1000000001").is_err());
    }

    #[test]
    fn displays_round_trip() {
        for s in ["30s", "2m", "500ms", "1h30m", "0s"] {
            let d = Dur(parse_duration(s).unwrap());
            assert_eq!(d.to_string(), s);
        }
    }
}
