//! The acknowledged-audit watermark: a small file beside sled's own that remembers how far the chain was flushed.
//!
//! sled recovers a damaged log by rolling back to the last state it can read, which can be an
//! older, or even empty, but valid database. Nothing inside the database can then tell that
//! acknowledged writes vanished. So after every flush the store writes the audit chain's head
//! (sequence and hash) as it was *before* that flush into `audit-head`, and at open it refuses a
//! database whose chain is shorter than, or disagrees with, the head last written. The file may
//! lag the database (a crash between the flush and the file write), never lead it.

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::records::AuditHead;

/// The watermark file's name inside the data directory.
pub(crate) const FILE: &str = "audit-head";

fn file(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes `head` as the watermark, replacing the previous one atomically (write, then rename).
pub(crate) fn write(dir: &Path, head: &AuditHead) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let text = format!("{} {}\n", head.seq, hex::encode(head.hash));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file(dir))
}

/// Reads the watermark, if one was ever written.
pub(crate) fn read(dir: &Path) -> Result<Option<AuditHead>> {
    let text = match std::fs::read_to_string(file(dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Open {
                path: dir.to_path_buf(),
                reason: format!("the audit watermark {FILE} cannot be read: {e}"),
            })
        }
    };
    parse(text.trim())
        .map(Some)
        .ok_or_else(|| StoreError::Open {
            path: dir.to_path_buf(),
            reason: format!("the audit watermark {FILE} is garbled: {:?}", text.trim()),
        })
}

fn parse(text: &str) -> Option<AuditHead> {
    let (seq, hash) = text.split_once(' ')?;
    let seq = seq.parse().ok()?;
    let hash: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
    Some(AuditHead { seq, hash })
}

/// Refuses a database whose chain head is behind, or differs from, the watermark.
pub(crate) fn check(dir: &Path, found: Option<&AuditHead>) -> Result<()> {
    let Some(mark) = read(dir)? else {
        return Ok(());
    };
    let found_seq = found.map_or(0, |h| h.seq);
    if found_seq < mark.seq {
        return Err(StoreError::Open {
            path: dir.to_path_buf(),
            reason: format!(
                "the audit chain ends at record {found_seq}, but records up to {} were acknowledged \
                 before: acknowledged data was lost or rolled back (restore from a backup; \
                 `liftlab audit verify` names the damage)",
                mark.seq
            ),
        });
    }
    if found_seq == mark.seq && found.map(|h| h.hash) != Some(mark.hash) && mark.seq > 0 {
        return Err(StoreError::Open {
            path: dir.to_path_buf(),
            reason: format!(
                "the audit chain's record {} does not match the acknowledged one: the data was \
                 changed or rolled back",
                mark.seq
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64, byte: u8) -> AuditHead {
        AuditHead {
            seq,
            hash: [byte; 32],
        }
    }

    #[test]
    fn a_watermark_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(read(dir.path()).expect("readable").is_none());
        write(dir.path(), &head(7, 3)).expect("written");
        let back = read(dir.path()).expect("readable").expect("present");
        assert_eq!((back.seq, back.hash), (7, [3; 32]));
    }

    #[test]
    fn a_shorter_or_different_chain_is_refused_and_a_longer_one_accepted() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), &head(7, 3)).expect("written");
        assert!(matches!(
            check(dir.path(), None),
            Err(StoreError::Open { .. })
        ));
        assert!(matches!(
            check(dir.path(), Some(&head(6, 3))),
            Err(StoreError::Open { .. })
        ));
        assert!(matches!(
            check(dir.path(), Some(&head(7, 4))),
            Err(StoreError::Open { .. })
        ));
        assert!(check(dir.path(), Some(&head(7, 3))).is_ok());
        assert!(check(dir.path(), Some(&head(9, 1))).is_ok());
    }

    #[test]
    fn a_garbled_watermark_is_an_open_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), "seven beef").expect("written");
        assert!(matches!(read(dir.path()), Err(StoreError::Open { .. })));
    }
}
