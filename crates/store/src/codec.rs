//! Byte encodings: big-endian composite keys and the version-tagged envelope around every stored value.
//!
//! A key is a sequence of components. Strings are written as a big-endian `u16` length and the
//! bytes, so a prefix of components is a prefix of bytes and no separator can be forged by an
//! id that contains one. Numbers are big-endian, so sled orders them numerically; signed
//! numbers have their sign bit flipped first for the same reason.
//!
//! A value is one version byte followed by a JSON body. Version 1 is the only one written;
//! anything else, an empty value or a body that does not parse is reported as
//! [`StoreError::Corrupt`], never a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::tree::TreeId;

/// The version tag written in front of every stored value.
pub(crate) const RECORD_VERSION: u8 = 1;

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

/// Encodes a value as version byte + JSON.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(RECORD_VERSION);
    // Serializing these plain data types into a Vec cannot fail: they have string keys only
    // and no custom serializer that errors; a failure would leave just the version byte,
    // which decodes as Corrupt rather than as a wrong value.
    if let Err(e) = serde_json::to_writer(&mut out, value) {
        tracing::error!(error = %e, "a record could not be serialized");
    }
    out
}

/// Decodes a value written by [`encode`], naming the tree and key if it cannot.
pub(crate) fn decode<T: DeserializeOwned>(tree: TreeId, key: &[u8], bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        None => Err(StoreError::corrupt(tree.name(), key, "empty record")),
        Some((&RECORD_VERSION, body)) => serde_json::from_slice(body)
            .map_err(|e| StoreError::corrupt(tree.name(), key, format!("undecodable record: {e}"))),
        Some((v, _)) => Err(StoreError::corrupt(
            tree.name(),
            key,
            format!("unknown record version {v}"),
        )),
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
    fn round_trip_and_corruption() {
        let bytes = encode(&vec![1.5f64, -0.1]);
        let back: Vec<f64> = decode(TreeId::Meta, b"k", &bytes).expect("decodes");
        assert_eq!(back, vec![1.5, -0.1]);
        for bad in [&b""[..], &b"\x02[]"[..], &b"\x01[1.5,"[..]] {
            let err = decode::<Vec<f64>>(TreeId::Meta, b"k", bad).expect_err("corrupt");
            assert!(
                matches!(err, StoreError::Corrupt { tree: "meta", .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn trailing_u64_reads_the_suffix() {
        let key = Key::new().str("exp").u64(42).into_bytes();
        assert_eq!(trailing_u64(TreeId::Meta, &key).expect("long enough"), 42);
        assert!(trailing_u64(TreeId::Meta, b"short").is_err());
    }
}
