//! HdrHistogram helpers: the one histogram shape every measurement uses, its serialized form
//! for the journal ([`HistBlob`]: V2 compressed, base64), merging, and the percentiles a report
//! or a hypothesis reads ([`Percentiles`]).
//!
//! Values are microseconds, 3 significant digits, from 1 µs to one hour: enough for any request
//! timeout, and a value beyond is clamped rather than lost. Histograms, not percentiles, are
//! stored, because percentiles cannot be merged: a phase is the merge of its windows, a run the
//! merge of its phases, several load workers the merge of their runs.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::error::LoadError;

/// Highest trackable value, in microseconds (one hour).
pub const MAX_US: u64 = 3_600_000_000;
/// Significant digits kept: 3, so a value is known within 0.1 %.
pub const SIGFIG: u8 = 3;

/// A new empty histogram of the shape every gameday measurement uses.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("1..=3.6e9 with 3 digits is a valid shape")
}

/// A histogram serialized as HdrHistogram V2 compressed (deflate) and base64: the same bytes
/// the HdrHistogram interval log format and other HdrHistogram ports read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct HistBlob(pub String);

impl HistBlob {
    /// Serializes a histogram.
    pub fn encode(h: &Histogram<u64>) -> HistBlob {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut buf)
            .expect("serializing into a Vec cannot fail");
        HistBlob(base64::engine::general_purpose::STANDARD.encode(buf))
    }

    /// Decodes back into a histogram.
    pub fn decode(&self) -> Result<Histogram<u64>, LoadError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.0.as_bytes())
            .map_err(|e| LoadError::BadHistogram {
                reason: format!("base64: {e}"),
            })?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| LoadError::BadHistogram {
                reason: format!("hdrhistogram v2: {e:?}"),
            })
    }
}

/// Merges serialized histograms (windows into a phase, workers into a run).
pub fn merge<'a>(
    blobs: impl IntoIterator<Item = &'a HistBlob>,
) -> Result<Histogram<u64>, LoadError> {
    let mut out = new_histogram();
    for b in blobs {
        let h = b.decode()?;
        out.add(&h).map_err(|e| LoadError::BadHistogram {
            reason: format!("cannot merge: {e:?}"),
        })?;
    }
    Ok(out)
}

/// The summary a report prints and a hypothesis checks, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Percentiles {
    /// Number of values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Reads the percentiles of a microsecond histogram, in milliseconds. All zeros when empty.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }

    /// Percentiles of a serialized histogram.
    pub fn of_blob(b: &HistBlob) -> Result<Percentiles, LoadError> {
        Ok(Percentiles::of(&b.decode()?))
    }
}

/// The three histograms of one window, phase or run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistSet {
    /// Latency from the intended send time (coordinated-omission corrected: what users feel).
    pub latency: HistBlob,
    /// Service time from the actual send (what the target did).
    pub service: HistBlob,
    /// Generator lag: actual send minus the time the request could have been sent.
    pub lag: HistBlob,
}

impl HistSet {
    /// Merges several sets (windows into a phase).
    pub fn merge<'a>(
        sets: impl IntoIterator<Item = &'a HistSet> + Clone,
    ) -> Result<HistSet, LoadError> {
        Ok(HistSet {
            latency: HistBlob::encode(&merge(sets.clone().into_iter().map(|s| &s.latency))?),
            service: HistBlob::encode(&merge(sets.clone().into_iter().map(|s| &s.service))?),
            lag: HistBlob::encode(&merge(sets.into_iter().map(|s| &s.lag))?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trips_and_merges() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1000u64 {
            a.record(v * 1000).unwrap();
        }
        b.record(60_000_000).unwrap();
        let (ba, bb) = (HistBlob::encode(&a), HistBlob::encode(&b));
        assert_eq!(ba.decode().unwrap(), a);
        let m = merge([&ba, &bb]).unwrap();
        assert_eq!(m.len(), 1001);
        let p = Percentiles::of(&m);
        assert!((p.max - 60_000.0).abs() / 60_000.0 < 0.001, "{p:?}");
        assert!((p.p50 - 500.0).abs() < 2.0, "{p:?}");
    }

    #[test]
    fn beyond_an_hour_is_clamped_not_lost() {
        let mut h = new_histogram();
        h.saturating_record(MAX_US * 10);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(HistBlob("not base64!".into()).decode().is_err());
        assert!(HistBlob("aGVsbG8=".into()).decode().is_err());
    }
}
