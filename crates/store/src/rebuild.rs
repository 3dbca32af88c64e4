//! `rebuild`: the whole log folded from its first record into fresh views, compared with (or replacing) the live ones.

use crate::body::Body;
use crate::engine::Core;
use crate::error::Result;
use crate::log::Mark;
use crate::records::{Mismatch, RebuildMode, RebuildReport};
use crate::views::{self, describe, key_exp, table, Kv, MemKv, SpecCache, Tx, Writes};

/// Folds the log through `head` into fresh views and reports every difference from the
/// live views; with [`RebuildMode::Replace`], also writes the rebuilt entries over them.
pub(crate) fn rebuild(core: &Core, head: &Mark, mode: RebuildMode) -> Result<RebuildReport> {
    let fresh = MemKv::default();
    let specs = SpecCache::default();
    let (mut experiments, mut outcomes, mut assignments) = (0, 0, 0);
    let mut records = core.log.read(0, head.seq)?;
    loop {
        let mut tx = Tx::new(&fresh, &specs, Mark::default());
        let mut n = 0;
        for r in records.by_ref() {
            let r = r?;
            match &r.entry.body {
                Body::Created { .. } => experiments += 1,
                Body::OutcomeRecorded { .. } => outcomes += 1,
                Body::Assigned { .. } => assignments += 1,
                _ => {}
            }
            tx.replay(r.entry.ts, &r.entry.body)?;
            n += 1;
            if n == 4096 {
                break;
            }
        }
        fresh.apply(tx.into_writes())?;
        if n < 4096 {
            break;
        }
    }
    drop(records);

    let live = core.kv().scan(&[])?;
    let rebuilt = fresh.scan(&[])?;
    let names = |k: &[u8]| -> String {
        let Some(id) = key_exp(k) else {
            return String::new();
        };
        views::state_of(&fresh, id)
            .or_else(|_| views::state_of(core.kv(), id))
            .map(|st| st.key)
            .unwrap_or_else(|_| format!("#{id}"))
    };
    let mut mismatches = Vec::new();
    let mut repairs = Writes::new();
    let mut l = live
        .into_iter()
        .filter(|(k, _)| k != table::MARK)
        .peekable();
    let mut r = rebuilt.into_iter().peekable();
    loop {
        let (key, live_v, rebuilt_v) = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some((lk, _)), Some((rk, _))) if lk == rk => {
                let (k, lv) = l.next().unwrap_or_default();
                let (_, rv) = r.next().unwrap_or_default();
                (k, Some(lv), Some(rv))
            }
            (Some((lk, _)), Some((rk, _))) if lk < rk => {
                let (k, lv) = l.next().unwrap_or_default();
                (k, Some(lv), None)
            }
            (Some(_), None) => {
                let (k, lv) = l.next().unwrap_or_default();
                (k, Some(lv), None)
            }
            _ => {
                let (k, rv) = r.next().unwrap_or_default();
                (k, None, Some(rv))
            }
        };
        if live_v == rebuilt_v {
            continue;
        }
        let tag = key.first().copied().unwrap_or(0);
        let shown =
            |v: &Option<Vec<u8>>| v.as_ref().map_or("null".to_string(), |v| describe(&key, v));
        mismatches.push(Mismatch {
            experiment: names(&key),
            table: table::name(tag).to_string(),
            entry: String::from_utf8_lossy(key.get(5..).unwrap_or_default()).into_owned(),
            live: shown(&live_v),
            rebuilt: shown(&rebuilt_v),
        });
        repairs.insert(key, rebuilt_v);
    }
    let replaced = mode == RebuildMode::Replace;
    if replaced && !repairs.is_empty() {
        core.kv().apply(repairs)?;
        core.specs.clear();
    }
    Ok(RebuildReport {
        experiments,
        outcomes,
        assignments,
        mismatches,
        replaced,
    })
}
