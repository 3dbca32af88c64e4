//! Byte encodings: big-endian composite keys and the version-tagged envelope around every stored value.
//!
//! A key is a sequence of components. Strings are written as a big-endian `u16` length and the
//! bytes, so a prefix of components is a prefix of bytes and no separator can be forged by an
//! id that contains one. Numbers are big-endian, so sled orders them numerically; signed
//! numbers have their sign bit flipped first for the same reason.
//!
//! A value is one tag byte followed by its body. The tag names both the record version and
//! its format: [`JSON_V1`] is JSON (used for specs, periods, epochs, bandit and drift state,
//! which are read rarely and are easiest to inspect), [`BINARY_V1`] is postcard (used for the
//! records written on every assignment and outcome). Each table has one format for writing
//! ([`TreeId::binary`]); reading follows the tag. An unknown tag, an empty value or a body
//! that does not decode is reported as [`StoreError::Corrupt`], never a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::tree::TreeId;

/// The tag of a version-1 record in JSON.
pub(crate) const JSON_V1: u8 = 1;

/// The tag of a version-1 record in postcard.
pub(crate) const BINARY_V1: u8 = 2;

/// A composite key under construction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    /// An empty key.
    pub(crate) fn new() -> Self {
        Key(Vec::with_capacity(48))
    }

    /// Appends a length-prefixed string component.
    ///
    /// Ids are at most 256 characters (1 KiB of UTF-8) and keys are slugs, far below the `u16`
    /// limit; a longer string is cut at 65 535 bytes rather than wrapping, which only the
    /// store's own validation could let through.
    pub(crate) fn str(mut self, s: &str) -> Self {
        let bytes = s.as_bytes();
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&bytes[..usize::from(len)]);
        self
    }

    /// Appends a big-endian `u64` component.
    pub(crate) fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// Appends an `i64` component that sorts numerically (sign bit flipped, big-endian).
    pub(crate) fn i64(mut self, n: i64) -> Self {
        let flipped = n.to_be_bytes();
        let mut bytes = flipped;
        bytes[0] ^= 0x80;
        self.0.extend_from_slice(&bytes);
        self
    }

    /// Appends one tag byte (for enum components).
    pub(crate) fn tag(mut self, t: u8) -> Self {
        self.0.push(t);
        self
    }

    /// The encoded bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Reads a big-endian `u64` from the last eight bytes of a key.
pub(crate) fn trailing_u64(tree: TreeId, key: &[u8]) -> Result<u64> {
    let start = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| StoreError::corrupt(tree.name(), key, "key shorter than 8 bytes"))?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&key[start..]);
    Ok(u64::from_be_bytes(buf))
}

/// Encodes a value for `tree`: tag byte + body in the table's format.
pub(crate) fn encode<T: Serialize + ?Sized>(tree: TreeId, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    // Serializing these plain data types cannot fail (no custom serializer returns errors);
    // were it to, the record would be the bare tag, which decodes as Corrupt rather than as a
    // wrong value.
    let written = if tree.binary() {
        out.push(BINARY_V1);
        postcard::to_extend(value, out).map_err(|e| e.to_string())
    } else {
        out.push(JSON_V1);
        serde_json::to_writer(&mut out, value)
            .map(|()| out)
            .map_err(|e| e.to_string())
    };
    match written {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, tree = tree.name(), "a record could not be serialized");
            vec![if tree.binary() { BINARY_V1 } else { JSON_V1 }]
        }
    }
}

/// Decodes a value written by [`encode`], naming the tree and key if it cannot.
pub(crate) fn decode<T: DeserializeOwned>(tree: TreeId, key: &[u8], bytes: &[u8]) -> Result<T> {
    let undecodable =
        |e: String| StoreError::corrupt(tree.name(), key, format!("undecodable record: {e}"));
    match bytes.split_first() {
        None => Err(StoreError::corrupt(tree.name(), key, "empty record")),
        Some((&JSON_V1, body)) => {
            serde_json::from_slice(body).map_err(|e| undecodable(e.to_string()))
        }
        Some((&BINARY_V1, body)) => match postcard::take_from_bytes(body) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => Err(undecodable(format!("{} trailing bytes", rest.len()))),
            Err(e) => Err(undecodable(e.to_string())),
        },
        Some((v, _)) => Err(StoreError::corrupt(
            tree.name(),
            key,
            format!("unknown record version {v}"),
        )),
    }
}

/// Reads the components of a key back, in the order they were written.
pub(crate) struct KeyReader<'a> {
    tree: TreeId,
    key: &'a [u8],
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    pub(crate) fn new(tree: TreeId, key: &'a [u8]) -> Self {
        KeyReader {
            tree,
            key,
            rest: key,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(StoreError::corrupt(
                self.tree.name(),
                self.key,
                "truncated key",
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn str(&mut self) -> Result<String> {
        let len = u16::from_be_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| StoreError::corrupt(self.tree.name(), self.key, "key is not UTF-8"))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        let mut bytes = self.array::<8>()?;
        bytes[0] ^= 0x80;
        Ok(i64::from_be_bytes(bytes))
    }

    pub(crate) fn tag(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// Fails unless every byte was read.
    pub(crate) fn end(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(StoreError::corrupt(
                self.tree.name(),
                self.key,
                "key has trailing bytes",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_components_cannot_forge_a_prefix() {
        let a = Key::new().str("ab").str("c").into_bytes();
        let b = Key::new().str("a").str("bc").into_bytes();
        assert_ne!(a, b);
        let prefix = Key::new().str("a").into_bytes();
        assert!(b.starts_with(&prefix));
        assert!(!a.starts_with(&prefix));
    }

    #[test]
    fn numbers_sort_numerically() {
        let keys: Vec<Vec<u8>> = [0u64, 1, 255, 256, u64::MAX]
            .iter()
            .map(|n| Key::new().u64(*n).into_bytes())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let signed: Vec<Vec<u8>> = [i64::MIN, -1, 0, 1, i64::MAX]
            .iter()
            .map(|n| Key::new().i64(*n).into_bytes())
            .collect();
        assert!(signed.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn round_trip_in_both_formats_and_corruption() {
        let value = vec![1.5f64, -0.1, 1e-300, f64::MAX];
        for tree in [TreeId::Meta, TreeId::Experiments] {
            let bytes = encode(tree, &value);
            assert_eq!(bytes[0], if tree.binary() { BINARY_V1 } else { JSON_V1 });
            let back: Vec<f64> = decode(tree, b"k", &bytes).expect("decodes");
            assert_eq!(back, value);
        }
        let mut trailing = encode(TreeId::Meta, &value);
        trailing.push(0);
        for bad in [
            &b""[..],
            &b"\x03[]"[..],
            &b"\x01[1.5,"[..],
            &b"\x02\x09"[..],
            &trailing[..],
        ] {
            let err = decode::<Vec<f64>>(TreeId::Meta, b"k", bad).expect_err("corrupt");
            assert!(
                matches!(err, StoreError::Corrupt { tree: "meta", .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn keys_read_back_as_written() {
        let key = Key::new()
            .str("exp")
            .u64(7)
            .i64(-3)
            .tag(2)
            .str("")
            .into_bytes();
        let mut r = KeyReader::new(TreeId::Meta, &key);
        assert_eq!(r.str().expect("str"), "exp");
        assert_eq!(r.u64().expect("u64"), 7);
        assert_eq!(r.i64().expect("i64"), -3);
        assert_eq!(r.tag().expect("tag"), 2);
        assert_eq!(r.str().expect("str"), "");
        r.end().expect("all read");
        let mut short = KeyReader::new(TreeId::Meta, &key[..4]);
        assert!(short.str().is_err());
    }

    #[test]
    fn trailing_u64_reads_the_suffix() {
        let key = Key::new().str("exp").u64(42).into_bytes();
        assert_eq!(trailing_u64(TreeId::Meta, &key).expect("long enough"), 42);
        assert!(trailing_u64(TreeId::Meta, b"short").is_err());
    }

    /// Every type written to a binary table survives postcard, which cannot skip fields or
    /// read a self-describing value: a serde attribute that needs either would fail here.
    #[test]
    fn binary_tables_round_trip_their_record_types() {
        use std::collections::BTreeMap;

        use liftlab_domain::{
            AggDelta, AggKey, AggScope, Assignment, HandledBy, MetricAggregate, MetricCell,
            Outcome, Status, UnitRow,
        };

        use crate::records::{
            ArmCounters, AssignmentCount, AuditHead, AuditKind, ExpState, StoredAudit,
        };

        fn check<T>(tree: TreeId, value: T)
        where
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            assert!(tree.binary(), "{}", tree.name());
            let bytes = encode(tree, &value);
            let back: T = decode(tree, b"k", &bytes).expect("round trips");
            assert_eq!(back, value);
        }
        let segments = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        check(
            TreeId::Assignments,
            Assignment {
                experiment: "e".into(),
                unit_id: "u".into(),
                task_id: "t".into(),
                arm: "ai".into(),
                in_experiment: true,
                version: 3,
                assignment_id: "a".into(),
                propensity: 0.3,
                period: 2,
                epoch: 1,
                segments: segments.clone(),
                assigned_at: -5,
            },
        );
        check(
            TreeId::Outcomes,
            Outcome {
                event_id: "ev".into(),
                experiment: "e".into(),
                task_id: "t".into(),
                unit_id: "u".into(),
                arm: "ai".into(),
                epoch: 0,
                ts: 1_700_000_000_000,
                metrics: BTreeMap::from([("m".to_string(), 0.1)]),
                handled_by: Some(HandledBy::Hybrid),
                model_version: None,
                attributes: segments.clone(),
            },
        );
        check(
            TreeId::Units,
            UnitRow {
                experiment: "e".into(),
                epoch: 0,
                unit_id: "u".into(),
                arm: "ai".into(),
                propensity: 0.5,
                segments,
                metrics: BTreeMap::from([(
                    "m".to_string(),
                    MetricCell {
                        value: 1.5,
                        count: 2,
                        sum: 3.0,
                    },
                )]),
                handled_by: BTreeMap::from([(HandledBy::Ai, 2)]),
                outcomes: 2,
                first_ts: 1,
                last_ts: 2,
            },
        );
        let mut aggregate = MetricAggregate::default();
        aggregate.apply(&AggDelta {
            key: AggKey {
                epoch: 0,
                arm: "ai".into(),
                metric: "m".into(),
                scope: AggScope::Day(-1),
            },
            old: None,
            new: 0.7,
            propensity: 0.25,
        });
        check(TreeId::Aggregates, aggregate);
        check(
            TreeId::Counters,
            ArmCounters {
                arm: "ai".into(),
                units: 1,
                outcomes: 2,
                handled_by: BTreeMap::from([(HandledBy::Human, 2)]),
            },
        );
        check(
            TreeId::AssignmentCounts,
            AssignmentCount {
                period: 1,
                arm: "ai".into(),
                count: 9,
            },
        );
        check(
            TreeId::State,
            ExpState {
                version: 2,
                epoch: 1,
                period: 0,
                status: Status::Paused,
                arms: vec!["a".into(), "b".into()],
            },
        );
        check(
            TreeId::Audit,
            StoredAudit {
                seq: 1,
                prev_hash: [0; 32],
                kind: AuditKind::OutcomeRecorded,
                experiment: "e".into(),
                payload: "{}".into(),
                ts: 3,
                hash: [7; 32],
            },
        );
        check(
            TreeId::Meta,
            AuditHead {
                seq: 4,
                hash: [1; 32],
            },
        );
        check(TreeId::Events, 12u64);
        check(TreeId::Tasks, "unit".to_string());
        check(TreeId::AuditIndex, ());
    }
}
