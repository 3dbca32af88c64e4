//! The acknowledged-audit watermark: a small file beside sled's own that remembers how far the chain was flushed.
//!
//! sled recovers a damaged log by rolling back to the last state it can read, which can be an
//! older, or even empty, but valid database. Nothing inside the database can then tell that
//! acknowledged writes vanished. So after every group commit is durable (its write-ahead log
//! record synced, its writes applied to sled) the store writes the audit chain's head (sequence
//! and hash) into `audit-head`, and at open — after replaying the log — it refuses a database
//! whose chain is shorter than, or disagrees with, the head last written. The file may lag the
//! database (a crash before the file write), never lead it.

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::records::AuditHead;

/// The watermark file's name inside the data directory.
pub(crate) const FILE: &str = "audit-head";

fn file(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The watermark file, kept open by the writer and overwritten in place after every group commit.
///
/// Each write puts one fixed-width line (a zero-padded 20-digit sequence number, a space, 64
/// hex digits, a newline: 86 bytes) at offset 0, so a newer line always covers an older one
/// completely and no file is created or renamed per commit (which cost the old flusher thread an inode
/// allocation and a forced writeback every time).
pub(crate) struct Mark {
    file: std::fs::File,
    /// The file held more than one line when opened (written by something else): cut it at
    /// the first write, once the new line is in place.
    cut: bool,
}

/// The length of a watermark line.
const LINE: u64 = 86;

impl Mark {
    /// Opens (or creates) the watermark file of the data directory `dir`.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Mark> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(file(dir))?;
        let cut = file.metadata()?.len() > LINE;
        Ok(Mark { file, cut })
    }

    /// Writes `head` through the mark kept in `kept`, opening it there first if needed.
    pub(crate) fn write_kept(
        kept: &mut Option<Mark>,
        dir: &Path,
        head: &AuditHead,
    ) -> std::io::Result<()> {
        let mut mark = match kept.take() {
            Some(mark) => mark,
            None => Mark::open(dir)?,
        };
        let written = mark.write(head);
        *kept = Some(mark);
        written
    }

    /// Overwrites the watermark with `head`.
    pub(crate) fn write(&mut self, head: &AuditHead) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let line = format!("{:020} {}\n", head.seq, hex::encode(head.hash));
        debug_assert_eq!(line.len() as u64, LINE);
        self.file.write_all_at(line.as_bytes(), 0)?;
        // A line of the older, shorter layout leaves nothing behind; a longer file is cut.
        if self.cut {
            self.file.set_len(LINE)?;
            self.cut = false;
        }
        Ok(())
    }
}

/// Writes `head` as the watermark of `dir` (opening the file for this one write).
#[cfg(test)]
pub(crate) fn write(dir: &Path, head: &AuditHead) -> std::io::Result<()> {
    Mark::open(dir)?.write(head)
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
    if text.is_empty() {
        // Created, and the process stopped before the first line was written.
        return Ok(None);
    }
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
    fn a_newer_watermark_replaces_an_older_one_of_any_length() {
        let dir = tempfile::tempdir().expect("temp dir");
        // The older layout: a shorter line written whole.
        std::fs::write(dir.path().join(FILE), format!("7 {}\n", "ab".repeat(32))).expect("written");
        assert_eq!(read(dir.path()).expect("readable").expect("present").seq, 7);
        let mut mark = Mark::open(dir.path()).expect("opens");
        mark.write(&head(123_456, 9)).expect("written");
        mark.write(&head(8, 1)).expect("written");
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("readable");
        assert_eq!(text.len(), 86, "{text:?}");
        let back = read(dir.path()).expect("readable").expect("present");
        assert_eq!((back.seq, back.hash), (8, [1; 32]));
    }

    #[test]
    fn a_longer_file_is_cut_to_the_one_line_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), "x".repeat(500)).expect("written");
        let mut kept = None;
        Mark::write_kept(&mut kept, dir.path(), &head(5, 2)).expect("written");
        Mark::write_kept(&mut kept, dir.path(), &head(6, 3)).expect("written");
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("readable");
        assert_eq!(text.len(), 86, "{text:?}");
        let back = read(dir.path()).expect("readable").expect("present");
        assert_eq!((back.seq, back.hash), (6, [3; 32]));
    }

    #[test]
    fn a_garbled_watermark_is_an_open_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), "seven beef").expect("written");
        assert!(matches!(read(dir.path()), Err(StoreError::Open { .. })));
    }
}
